//! The read path of [`RetainedStore`]: [`load`](RetainedStore::load) and
//! [`matching`](RetainedStore::matching), both paging through the topic index and fetching
//! records in bounded batches.

use bytes::Bytes;
use stratus_model::TenantId;
use stratus_topics::{TopicFilter, TopicName};

use super::plan::{LexBound, LexRange, ScanPlan};
use super::{RetainedEntry, RetainedSnapshot, RetainedStore, invocation, scripts};
use crate::error::RedisStateError;
use crate::keys::RetainedKeys;

/// Topic names one `ZRANGEBYLEX` page returns at most.
const NAME_PAGE: usize = 512;

/// Topics one fetch script reads at most.
const FETCH_TOPICS: usize = 128;

/// Record bytes after which a fetch script stops and lets the caller ask for the rest, so no
/// reply grows past about this plus one record.
const FETCH_BYTES: usize = 1 << 20;

/// Times [`RetainedStore::load`] reads the tenant again when its version moved during a read.
const SNAPSHOT_ATTEMPTS: u32 = 3;

impl RetainedStore {
    /// Every live retained message of the tenant, at most `limit` of them (pass the tenant's
    /// `max_messages`), in topic byte order. Entries expired at `now_ms` are purged first,
    /// atomically per batch with their counters.
    ///
    /// The snapshot is consistent with its `version` unless writers changed the tenant during
    /// each of a few attempts; see [`RetainedSnapshot::version`].
    pub async fn load(
        &self,
        tenant: &TenantId,
        now_ms: u64,
        limit: usize,
    ) -> Result<RetainedSnapshot, RedisStateError> {
        let keys = self.namespace.retained(tenant);
        let everything = LexRange {
            start: LexBound::Unbounded,
            end: LexBound::Unbounded,
        };
        let mut attempt = 1;
        loop {
            let (_removed, version) = self.purge_all(&keys, now_ms).await?;
            let mut entries = Vec::new();
            // One more than asked tells whether the limit cut anything off.
            let wanted = limit.saturating_add(1);
            self.scan_into(&keys, &everything, |_| true, now_ms, wanted, &mut entries)
                .await?;
            let version_after = self.usage(tenant).await?.version;
            if version_after == version || attempt >= SNAPSHOT_ATTEMPTS {
                let truncated = entries.len() > limit;
                entries.truncate(limit);
                return Ok(RetainedSnapshot {
                    version,
                    entries,
                    truncated,
                });
            }
            attempt += 1;
        }
    }

    /// The live retained messages whose topic matches `filter`, at most `limit`.
    ///
    /// A filter with literal leading levels reads only the index range under that prefix
    /// (`a/b/#` reads `[a/b/, a/b0)` and looks up the parent `a/b`); a filter starting with a
    /// wildcard pages through the whole index except the `$` topics it cannot match. Every
    /// candidate is checked with [`TopicFilter::matches`]. Entries expired at `now_ms` are
    /// purged first.
    pub async fn matching(
        &self,
        tenant: &TenantId,
        filter: &TopicFilter,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<RetainedEntry>, RedisStateError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let keys = self.namespace.retained(tenant);
        self.purge_all(&keys, now_ms).await?;
        let plan = ScanPlan::for_filter(filter);
        if let Some(exact) = plan.exact {
            let topics: Vec<TopicName> = TopicName::try_from(exact)
                .ok()
                .filter(|topic| filter.matches(topic))
                .into_iter()
                .collect();
            self.fetch_into(&keys, &topics, now_ms, limit, &mut found)
                .await?;
        }
        for range in &plan.ranges {
            if found.len() >= limit {
                break;
            }
            self.scan_into(
                &keys,
                range,
                |topic| filter.matches(topic),
                now_ms,
                limit,
                &mut found,
            )
            .await?;
        }
        Ok(found)
    }

    /// Pages through `range` of the index, fetching the live entries whose topic is `wanted`
    /// into `out` until it holds `limit`.
    async fn scan_into(
        &self,
        keys: &RetainedKeys,
        range: &LexRange,
        wanted: impl Fn(&TopicName) -> bool,
        now_ms: u64,
        limit: usize,
        out: &mut Vec<RetainedEntry>,
    ) -> Result<(), RedisStateError> {
        let end = range.end.to_arg(false).into_bytes();
        let mut start = range.start.to_arg(true).into_bytes();
        while out.len() < limit {
            let mut conn = self.conn.clone();
            let names: Vec<Vec<u8>> = redis::cmd("ZRANGEBYLEX")
                .arg(&keys.idx)
                .arg(&start)
                .arg(&end)
                .arg("LIMIT")
                .arg(0)
                .arg(NAME_PAGE)
                .query_async(&mut conn)
                .await
                .map_err(RedisStateError::command("retained index scan"))?;
            let last_page = names.len() < NAME_PAGE;
            if let Some(last) = names.last() {
                start = [b"(".as_slice(), last].concat();
            }
            let topics: Vec<TopicName> = names
                .into_iter()
                .filter_map(indexed_topic)
                .filter(|topic| wanted(topic))
                .collect();
            self.fetch_into(keys, &topics, now_ms, limit, out).await?;
            if last_page {
                break;
            }
        }
        Ok(())
    }

    /// Fetches the records of `topics` in bounded batches, appending the live ones to `out`
    /// until it holds `limit`. Topics deleted meanwhile are skipped.
    async fn fetch_into(
        &self,
        keys: &RetainedKeys,
        topics: &[TopicName],
        now_ms: u64,
        limit: usize,
        out: &mut Vec<RetainedEntry>,
    ) -> Result<(), RedisStateError> {
        let mut rest = topics;
        while !rest.is_empty() && out.len() < limit {
            let batch = rest.get(..FETCH_TOPICS).unwrap_or(rest);
            let mut invocation = invocation(&scripts::FETCH, keys);
            invocation.arg(FETCH_BYTES);
            for topic in batch {
                invocation.arg(topic.as_str());
            }
            type Found = Vec<(Vec<u8>, Vec<u8>, Option<String>)>;
            let (_version, consumed, found): (u64, usize, Found) =
                self.run(&invocation, "retained fetch").await?;
            for (topic, record, expiry) in found {
                let expires_at_ms = expiry.as_deref().map(parse_expiry).transpose()?;
                if expires_at_ms.is_some_and(|at| at <= now_ms) {
                    continue;
                }
                let Some(topic) = indexed_topic(topic) else {
                    continue;
                };
                out.push(RetainedEntry {
                    topic,
                    record: Bytes::from(record),
                    expires_at_ms,
                });
                if out.len() >= limit {
                    return Ok(());
                }
            }
            if consumed == 0 {
                return Err(RedisStateError::unexpected(
                    "retained fetch",
                    "the script consumed no topics",
                ));
            }
            rest = rest.get(consumed..).unwrap_or_default();
        }
        Ok(())
    }
}

/// A topic read back from Redis; one that is not a valid topic name was not written by this
/// crate and is skipped with a warning.
fn indexed_topic(bytes: Vec<u8>) -> Option<TopicName> {
    let parsed = String::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(|s| TopicName::try_from(s).map_err(|e| e.to_string()));
    match parsed {
        Ok(topic) => Some(topic),
        Err(error) => {
            tracing::warn!(%error, "skipping a retained index entry that is not a topic name");
            None
        }
    }
}

/// An expiry score as Redis prints it: an integer for every value this crate writes.
fn parse_expiry(score: &str) -> Result<u64, RedisStateError> {
    score
        .parse::<u64>()
        .or_else(|_| score.parse::<f64>().map(|ms| ms as u64))
        .map_err(|_| RedisStateError::unexpected("retained fetch", format!("expiry {score:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_scores_parse_as_redis_prints_them() {
        assert_eq!(parse_expiry("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_expiry("9007199254740991").unwrap(), (1 << 53) - 1);
        assert_eq!(parse_expiry("1.5e3").unwrap(), 1500);
        assert!(parse_expiry("soon").is_err());
    }

    #[test]
    fn index_entries_that_are_not_topic_names_are_skipped() {
        assert!(indexed_topic(b"a/b".to_vec()).is_some());
        assert!(indexed_topic(b"a/#".to_vec()).is_none());
        assert!(indexed_topic(vec![0xff, 0xfe]).is_none());
    }
}
