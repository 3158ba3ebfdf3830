//! Retained messages in the clustered shape. Redis holds each tenant's retained messages
//! (`stratus-redis-state`: one hash per tenant, a lexicographic index for filters with a literal
//! prefix, count and byte quotas, a version bumped by every change). Each edge keeps the retained
//! messages of the tenants it serves in memory, loaded from Redis when the tenant's first client
//! connects, and follows the changes other edges make through notifications on
//! `r.<pool>.<tenant>` carrying the new version: a notification that skips a version makes the
//! edge reload the tenant from Redis, so a lost notification costs a reload, never a stale copy
//! that stays stale.
//!
//! The edge's own changes reach Redis through the store applier (`apply_changes`): a retained
//! PUBLISH is acknowledged only once Redis has it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use stratus_model::TenantId;
use stratus_redis_state::{RetainedOutcome, RetainedQuota, RetainedStore};
use stratus_topics::TopicName;

use super::ClusterLink;
use crate::broker::{Tenant, persist};
use crate::store::StoreOp;

const VERSION: &str = "Stratus-Retained-Version";
const OP: &str = "Stratus-Retained-Op";
const EXPIRES: &str = "Stratus-Expires";

/// Per-tenant state of the local copy.
#[derive(Debug, Default)]
struct TenantCopy {
    /// Set once the copy was loaded and the notifications are followed.
    ready: tokio::sync::OnceCell<()>,
    /// Version of Redis's data the copy reflects.
    version: Mutex<u64>,
}

/// The Redis store and the local copies of this edge.
#[derive(Debug)]
pub(crate) struct RetainedSync {
    store: RetainedStore,
    tenants: Mutex<HashMap<TenantId, Arc<TenantCopy>>>,
}

impl RetainedSync {
    pub(super) fn new(store: RetainedStore) -> Self {
        Self {
            store,
            tenants: Mutex::default(),
        }
    }

    /// Loads `tenant`'s retained messages unless this edge already follows them.
    pub(super) async fn ensure_loaded(
        &self,
        link: &Arc<ClusterLink>,
        tenant: &Arc<Tenant>,
    ) -> Result<(), String> {
        let copy = Arc::clone(self.tenants.lock().entry(tenant.id.clone()).or_default());
        copy.ready
            .get_or_try_init(|| async {
                // Follow first, then load: a change made meanwhile is either in the snapshot or
                // arrives as a notification (applied when newer than the snapshot).
                let subject = link
                    .retained_subject(&tenant.id)
                    .map_err(|e| format!("no retained-change subject for the tenant: {e}"))?;
                let sub = link.nats.subscribe(subject).await.map_err(|e| {
                    format!("cannot follow retained-message changes over NATS: {e}")
                })?;
                link.barrier().await.map_err(|e| {
                    format!("cannot follow retained-message changes over NATS: {e}")
                })?;
                self.reload(tenant, &copy, link.retained_limit()).await?;
                tokio::spawn(follow(
                    Arc::clone(link),
                    Arc::clone(tenant),
                    Arc::clone(&copy),
                    sub,
                ));
                Ok::<(), String>(())
            })
            .await
            .map(|_| ())
    }

    /// Replaces the local copy with Redis's.
    async fn reload(&self, tenant: &Tenant, copy: &TenantCopy, limit: usize) -> Result<(), String> {
        let snapshot = self
            .store
            .load(&tenant.id, crate::broker::unix_ms_now(), limit)
            .await
            .map_err(|e| format!("cannot load retained messages from Redis: {e}"))?;
        let mut messages = Vec::with_capacity(snapshot.entries.len());
        for entry in snapshot.entries {
            match persist::decode_message(&entry.record, entry.expires_at_ms) {
                Some(d) => messages.push(d.msg),
                None => {
                    tracing::warn!(tenant = %tenant.id, topic = %entry.topic, "undecodable retained message in Redis skipped")
                }
            }
        }
        let mut version = copy.version.lock();
        let mut retained = tenant.retained.write();
        *retained = Default::default();
        for msg in &messages {
            let _ = retained.set(msg, usize::MAX, usize::MAX);
        }
        *version = snapshot.version;
        Ok(())
    }
}

/// Applies the notifications of `tenant` to its local copy until the task is dropped.
async fn follow(
    link: Arc<ClusterLink>,
    tenant: Arc<Tenant>,
    copy: Arc<TenantCopy>,
    mut sub: async_nats::Subscriber,
) {
    while let Some(m) = sub.next().await {
        let header = |name: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let Some(version) = header(VERSION).and_then(|v| v.parse::<u64>().ok()) else {
            tracing::warn!("retained-message notification without a version ignored");
            continue;
        };
        let gap = {
            let mut current = copy.version.lock();
            if version <= *current {
                continue;
            }
            if version == *current + 1 {
                apply(&tenant, header(OP).as_deref(), &m.payload, header(EXPIRES));
                *current = version;
                false
            } else {
                true
            }
        };
        if gap
            && let Err(e) = link
                .retained
                .reload(&tenant, &copy, link.retained_limit())
                .await
        {
            tracing::warn!(tenant = %tenant.id, "retained messages not reloaded after a missed change: {e}");
        }
    }
}

/// Applies one change to the local copy.
fn apply(tenant: &Tenant, op: Option<&str>, payload: &Bytes, expires: Option<String>) {
    match op {
        Some("put") => {
            let expires_at_ms = expires.and_then(|v| v.parse::<u64>().ok());
            if let Some(d) = persist::decode_message(payload, expires_at_ms) {
                let _ = tenant.retained.write().set(&d.msg, usize::MAX, usize::MAX);
            }
        }
        Some("delete") => {
            if let Ok(topic) = std::str::from_utf8(payload)
                && let Ok(topic) = TopicName::try_from(topic)
            {
                tenant.retained.write().clear(&topic);
            }
        }
        _ => tracing::warn!("retained-message notification with an unknown operation ignored"),
    }
}

/// Applies one change to retained messages to Redis, then tells the other edges. A Redis error
/// is retried (the acknowledgements waiting for it are held) until Redis answers.
pub(super) async fn apply_retained(
    link: &ClusterLink,
    broker: &crate::broker::Broker,
    op: StoreOp,
) {
    let quota = RetainedQuota {
        max_messages: broker.config.limits.max_retained_messages,
        max_bytes: broker.config.limits.max_retained_bytes,
    };
    match op {
        StoreOp::PutRetained {
            tenant,
            topic,
            publish,
            expires_at_ms,
        } => {
            let Ok(topic) = TopicName::new(topic) else {
                return;
            };
            let change = retry_redis(|| {
                link.retained.store.put(
                    &tenant,
                    &topic,
                    &publish,
                    expires_at_ms,
                    quota,
                    crate::broker::unix_ms_now(),
                )
            })
            .await;
            if change.outcome == RetainedOutcome::QuotaExceeded {
                tracing::warn!(tenant = %tenant, topic = %topic, "retained message refused by the tenant's quota in Redis (another edge filled it); reloading");
                let t = broker.tenant(&tenant);
                let copy = link.retained.tenants.lock().get(&tenant).cloned();
                if let Some(copy) = copy
                    && let Err(e) = link.retained.reload(&t, &copy, link.retained_limit()).await
                {
                    tracing::warn!("retained messages not reloaded: {e}");
                }
            } else {
                let mut headers = HeaderMap::new();
                headers.insert(VERSION, change.version.to_string().as_str());
                headers.insert(OP, "put");
                if let Some(at) = expires_at_ms {
                    headers.insert(EXPIRES, at.to_string().as_str());
                }
                notify(link, &tenant, headers, publish).await;
            }
        }
        StoreOp::DeleteRetained { tenant, topic } => {
            let Ok(topic) = TopicName::new(topic) else {
                return;
            };
            let change = retry_redis(|| link.retained.store.delete(&tenant, &topic)).await;
            if change.outcome == RetainedOutcome::Deleted {
                let mut headers = HeaderMap::new();
                headers.insert(VERSION, change.version.to_string().as_str());
                headers.insert(OP, "delete");
                notify(
                    link,
                    &tenant,
                    headers,
                    Bytes::copy_from_slice(topic.as_str().as_bytes()),
                )
                .await;
            }
        }
        other => tracing::error!(
            op = ?std::mem::discriminant(&other),
            "a session change reached the retained-message applier"
        ),
    }
}

async fn notify(link: &ClusterLink, tenant: &TenantId, headers: HeaderMap, payload: Bytes) {
    let subject = match link.retained_subject(tenant) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(tenant = %tenant, "no retained-change subject for the tenant: {e}");
            return;
        }
    };
    if let Err(e) = link
        .nats
        .publish_with_headers(subject, headers, payload)
        .await
    {
        tracing::warn!(tenant = %tenant, "retained-message change not announced to other edges (they reload on the next one): {e}");
    }
}

/// Runs a Redis call until it succeeds, backing off up to a second between attempts.
pub(super) async fn retry_redis<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, stratus_redis_state::RedisStateError>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!("Redis write failed, retrying (acknowledgements wait): {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
