//! The Lua scripts behind [`SessionStore`](super::SessionStore). Each runs atomically over one
//! session's five keys, which share a hash slot.
//!
//! Every script takes `KEYS = [meta, subs, msgs, mstate, q2in]` and `ARGV[1]` = the caller's
//! token. Tokens and cursors are u64 kept as canonical decimal strings (what Rust's
//! `u64::to_string` writes) and compared as strings, never as Lua numbers: those are doubles and
//! lose precision above 2^53. Every script checks what it relies on before its first write,
//! because Redis does not roll back a script that fails half-way.

use std::sync::LazyLock;

use redis::Script;

/// Shared Lua prologue: key names and u64 helpers.
macro_rules! prologue {
    () => {
        r#"
local meta, subs, msgs, mstate, q2in = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

-- -1, 0 or 1 as canonical decimal a is below, equal to or above canonical decimal b.
local function compare_u64(a, b)
  if #a ~= #b then
    if #a < #b then return -1 end
    return 1
  end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  return 0
end

-- Whether s is a u64 in canonical decimal: digits only, no leading zero, at most 2^64 - 1.
local function is_u64(s)
  if type(s) ~= 'string' or #s == 0 or #s > 20 or string.find(s, '%D') then
    return false
  end
  if #s > 1 and string.byte(s, 1) == 48 then
    return false
  end
  return #s < 20 or compare_u64(s, '18446744073709551615') <= 0
end
"#
    };
}

/// `ARGV = [token, client_id, mode, max_subscriptions, max_messages, max_incoming_qos2]`,
/// `mode` one of `resume`, `fresh`, `fresh_persistent`. Replies, first element the status:
///
/// - `{'corrupt', field}`: a meta field is not a canonical decimal (or `client_id` is missing);
///   nothing changed. Entries (filters, sequences, packet ids) are checked by the caller.
/// - `{'mismatch', stored client id}`: another client's session; nothing changed.
/// - `{'fenced', stored token}`: the stored token is larger; nothing changed.
/// - `{'too_large', which, count}` (`which`: 1 subscriptions, 2 messages, 3 message states,
///   4 incoming QoS 2 ids): over the load limits; nothing changed.
/// - `{'fresh'}`: every key deleted, then meta = {token, client_id} when persistent.
/// - `{'none'}`: no session was stored (no meta, or meta without `expiry`); every key deleted,
///   then meta = {token, client_id}.
/// - `{'resumed', {expiry, next_pid, cursor, offline_at}, subs, msgs, mstate, q2in}` (hashes as
///   flat field/value arrays): the session as it was; then the token is stored, `offline_at`
///   removed and every key persisted.
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
local token, client_id, mode = ARGV[1], ARGV[2], ARGV[3]
local exists = redis.call('EXISTS', meta) == 1
local stored = redis.call('HMGET', meta, 'token', 'client_id', 'expiry')
if exists then
  if not is_u64(stored[1]) then
    return {'corrupt', 'token'}
  end
  if not stored[2] then
    return {'corrupt', 'client_id'}
  end
  if stored[2] ~= client_id then
    return {'mismatch', stored[2]}
  end
  if compare_u64(stored[1], token) > 0 then
    return {'fenced', stored[1]}
  end
end

if mode ~= 'resume' then
  redis.call('DEL', unpack(KEYS))
  if mode == 'fresh_persistent' then
    redis.call('HSET', meta, 'token', token, 'client_id', client_id)
  end
  return {'fresh'}
end

if not (exists and stored[3]) then
  redis.call('DEL', unpack(KEYS))
  redis.call('HSET', meta, 'token', token, 'client_id', client_id)
  return {'none'}
end

local sizes = {
  redis.call('HLEN', subs), redis.call('HLEN', msgs), redis.call('HLEN', mstate),
  redis.call('SCARD', q2in),
}
local limits = {ARGV[4], ARGV[5], ARGV[5], ARGV[6]}
for which = 1, 4 do
  if sizes[which] > tonumber(limits[which]) then
    return {'too_large', which, sizes[which]}
  end
end

local names = {'expiry', 'next_pid', 'cursor', 'offline_at'}
local fields = redis.call('HMGET', meta, unpack(names))
for k = 1, #names do
  if fields[k] and not is_u64(fields[k]) then
    return {'corrupt', names[k]}
  end
end

local reply = {
  'resumed',
  fields,
  redis.call('HGETALL', subs),
  redis.call('HGETALL', msgs),
  redis.call('HGETALL', mstate),
  redis.call('SMEMBERS', q2in),
}
redis.call('HSET', meta, 'token', token)
redis.call('HDEL', meta, 'offline_at')
for _, key in ipairs(KEYS) do
  redis.call('PERSIST', key)
end
return reply
"#
    ))
});

/// `ARGV = [token, op, args..., op, args...]` → `{'done'}`, `{'fenced'}` (meta missing or
/// holding another token; nothing changed) or `{'corrupt', field}` (nothing changed).
///
/// Op codes and their arguments (`''` stands for "none"):
/// `M expiry next_pid`, `O at_ms_or_'' grace_ms`, `S filter record`, `s filter`,
/// `P seq record stream_seq_or_''`, `U seq state`, `D seq`, `C stream_seq`, `Q packet_id`,
/// `q packet_id`, `X`. Numbers are canonical decimals.
///
/// The whole batch is parsed, and the stored fields it computes with (`cursor`, `expiry`)
/// checked, before the first write. At the end, while `offline_at` is set, every existing key
/// gets the session's deadline: the one an `O` write of this batch computed, else the meta
/// key's own (set by an earlier batch), so keys created since do not outlive the session.
pub(super) static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prologue!(),
        r#"
if redis.call('HGET', meta, 'token') ~= ARGV[1] then
  return {'fenced'}
end

local arity = {M = 2, O = 2, S = 2, s = 1, P = 3, U = 2, D = 1, C = 1, Q = 1, q = 1, X = 0}
local ops, i = {}, 2
while i <= #ARGV do
  local n = arity[ARGV[i]]
  if not n or i + n > #ARGV then
    return redis.error_reply('stratus session batch malformed at argument ' .. i)
  end
  ops[#ops + 1] = i
  i = i + n + 1
end
for _, field in ipairs({'cursor', 'expiry'}) do
  local value = redis.call('HGET', meta, field)
  if value and not is_u64(value) then
    return {'corrupt', field}
  end
end

-- Deadlines are doubles: capped at 2^53 - 1, the largest integer a double holds exactly.
local max_deadline = 9007199254740991
local deadline = nil

local function raise_cursor(seq)
  local cursor = redis.call('HGET', meta, 'cursor')
  if not cursor or compare_u64(seq, cursor) > 0 then
    redis.call('HSET', meta, 'cursor', seq)
  end
end

for _, at in ipairs(ops) do
  local op, a, b, c = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if op == 'M' then
    redis.call('HSET', meta, 'expiry', a, 'next_pid', b)
  elseif op == 'O' then
    if a == '' then
      redis.call('HDEL', meta, 'offline_at')
      for _, key in ipairs(KEYS) do
        redis.call('PERSIST', key)
      end
      deadline = nil
    else
      redis.call('HSET', meta, 'offline_at', a)
      local expiry = tonumber(redis.call('HGET', meta, 'expiry') or '0')
      deadline = math.min(tonumber(a) + expiry * 1000 + tonumber(b), max_deadline)
    end
  elseif op == 'S' then
    redis.call('HSET', subs, a, b)
  elseif op == 's' then
    redis.call('HDEL', subs, a)
  elseif op == 'P' then
    redis.call('HSET', msgs, a, b)
    if c ~= '' then
      raise_cursor(c)
    end
  elseif op == 'U' then
    if redis.call('HEXISTS', msgs, a) == 1 then
      redis.call('HSET', mstate, a, b)
    end
  elseif op == 'D' then
    redis.call('HDEL', msgs, a)
    redis.call('HDEL', mstate, a)
  elseif op == 'C' then
    raise_cursor(a)
  elseif op == 'Q' then
    redis.call('SADD', q2in, a)
  elseif op == 'q' then
    redis.call('SREM', q2in, a)
  elseif op == 'X' then
    redis.call('DEL', subs, msgs, mstate, q2in)
    for _, field in ipairs(redis.call('HKEYS', meta)) do
      if field ~= 'token' and field ~= 'client_id' then
        redis.call('HDEL', meta, field)
      end
    end
    redis.call('PERSIST', meta)
    deadline = nil
  end
end

if redis.call('HEXISTS', meta, 'offline_at') == 1 then
  if not deadline then
    local current = redis.call('PEXPIRETIME', meta)
    if current > 0 then
      deadline = current
    end
  end
  if deadline then
    local when = string.format('%.0f', deadline)
    for _, key in ipairs(KEYS) do
      redis.call('PEXPIREAT', key, when)
    end
  end
end
return {'done'}
"#
    ))
});

/// `ARGV = [token]` → 1 after deleting every key of the session, or 0 (fenced: meta missing or
/// holding another token) with nothing changed.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('DEL', unpack(KEYS))
return 1
"#,
    )
});
