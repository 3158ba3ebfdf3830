//! The Lua scripts behind [`RetainedStore`](super::RetainedStore). Each runs atomically over one
//! tenant's four keys, which share a hash slot.
//!
//! Every script takes `KEYS = [msgs, idx, exp, meta]`. Outcome codes are those of
//! [`RetainedOutcome::from_code`](super::RetainedOutcome). `meta.bytes` is the sum over entries
//! of `#topic + #record`.

use std::sync::LazyLock;

use redis::Script;

/// Shared Lua prologue: key names and `purge_expired`, which removes up to `batch` entries
/// whose expiry is at or before `now`, fixes the counters and, if it removed anything, bumps
/// the version. Returns how many expiry entries it processed.
macro_rules! prologue {
    () => {
        r#"
local msgs, idx, exp, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function current_version()
  return tonumber(redis.call('HGET', meta, 'version') or 0)
end

local function purge_expired(now, batch)
  local expired = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, batch)
  if #expired == 0 then
    return 0
  end
  local removed, freed = 0, 0
  for _, topic in ipairs(expired) do
    if redis.call('HEXISTS', msgs, topic) == 1 then
      removed = removed + 1
      freed = freed + #topic + redis.call('HSTRLEN', msgs, topic)
      redis.call('HDEL', msgs, topic)
    end
    redis.call('ZREM', idx, topic)
    redis.call('ZREM', exp, topic)
  end
  redis.call('HINCRBY', meta, 'count', -removed)
  redis.call('HINCRBY', meta, 'bytes', -freed)
  redis.call('HINCRBY', meta, 'version', 1)
  return #expired
end
"#
    };
}

/// `ARGV = [topic, record, expires_at_ms or '', max_messages, max_bytes, now_ms, purge_batch]`
/// → `{outcome, version, purged}`.
///
/// Purges one batch of expired entries first, so they do not count against the quota. A new
/// topic needs a free message slot; any put must keep the bytes within the quota unless it does
/// not grow them (a replacement by something no larger is always accepted). Refused, nothing
/// changes but the purge.
pub(super) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
local topic, record = ARGV[1], ARGV[2]
local max_messages, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local purged = purge_expired(ARGV[6], tonumber(ARGV[7]))
local count = tonumber(redis.call('HGET', meta, 'count') or 0)
local bytes = tonumber(redis.call('HGET', meta, 'bytes') or 0)
local existed = redis.call('HEXISTS', msgs, topic) == 1
local new_count, new_bytes = count, bytes + #topic + #record
if existed then
  new_bytes = new_bytes - #topic - redis.call('HSTRLEN', msgs, topic)
else
  new_count = count + 1
end
if (not existed and new_count > max_messages) or (new_bytes > max_bytes and new_bytes > bytes) then
  return {4, current_version(), purged}
end
redis.call('HSET', msgs, topic, record)
redis.call('ZADD', idx, 0, topic)
if ARGV[3] == '' then
  redis.call('ZREM', exp, topic)
else
  redis.call('ZADD', exp, ARGV[3], topic)
end
redis.call('HSET', meta, 'count', new_count, 'bytes', new_bytes)
local version = redis.call('HINCRBY', meta, 'version', 1)
if existed then
  return {1, version, purged}
end
return {0, version, purged}
"#
    ))
});

/// `ARGV = [topic]` → `{outcome, version}`.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
local topic = ARGV[1]
if redis.call('HEXISTS', msgs, topic) == 0 then
  return {3, current_version()}
end
local size = #topic + redis.call('HSTRLEN', msgs, topic)
redis.call('HDEL', msgs, topic)
redis.call('ZREM', idx, topic)
redis.call('ZREM', exp, topic)
redis.call('HINCRBY', meta, 'count', -1)
redis.call('HINCRBY', meta, 'bytes', -size)
return {2, redis.call('HINCRBY', meta, 'version', 1)}
"#
    ))
});

/// `ARGV = [now_ms, batch]` → `{processed, version}`; call again while `processed == batch`.
pub(super) static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
local processed = purge_expired(ARGV[1], tonumber(ARGV[2]))
return {processed, current_version()}
"#
    ))
});

/// `ARGV = [byte_budget, topic...]` → `{version, consumed, {{topic, record, expiry or nil}...}}`.
///
/// Reads the given topics in order, skipping absent ones, and stops after the record that
/// reaches `byte_budget`; `consumed` says how many topics it got through. The caller drops
/// expired entries (it owns the clock) and asks again for the rest.
pub(super) static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
local budget = tonumber(ARGV[1])
local found, used, consumed = {}, 0, 0
for i = 2, #ARGV do
  local topic = ARGV[i]
  consumed = consumed + 1
  local record = redis.call('HGET', msgs, topic)
  if record then
    found[#found + 1] = {topic, record, redis.call('ZSCORE', exp, topic)}
    used = used + #record
    if used >= budget then
      break
    end
  end
end
return {current_version(), consumed, found}
"#
    ))
});

/// `ARGV = []` → `version`. Deletes every entry, zeroes the counters and bumps the version, so
/// versions stay monotonic for anyone caching the tenant.
pub(super) static CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
redis.call('DEL', msgs, idx, exp)
redis.call('HSET', meta, 'count', 0, 'bytes', 0)
return redis.call('HINCRBY', meta, 'version', 1)
"#
    ))
});
