//! The SQLite file behind the embedded store: schema, start-up load, and the writer thread that
//! applies batches of [`StoreOp`]s in one transaction each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use rusqlite::{Connection, params};

use super::record::{
    Snapshot, StoredMessage, StoredRetained, StoredSession, StoredSubscription, StoredWill,
};
use super::{CommitState, StoreError, StoreOp, Ticket};
use crate::config::Durability;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 8192;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    tenant TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- Session Expiry Interval in force, seconds.
    expiry_secs INTEGER NOT NULL,
    -- Unix ms when the session went offline; NULL while a connection was attached.
    disconnected_at_ms INTEGER,
    -- Last packet identifier allocated to an outbound message.
    next_packet_id INTEGER NOT NULL,
    -- Pending will (an MQTT 5.0 PUBLISH), when it is due (unix ms), and its Message Expiry
    -- Interval in seconds, which starts when the will is published.
    will_publish BLOB,
    will_due_at_ms INTEGER,
    will_expiry_secs INTEGER,
    PRIMARY KEY (tenant, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- Filter as subscribed, with any $share/group/ prefix.
    filter TEXT NOT NULL,
    -- MQTT 5.0 subscription options byte.
    options INTEGER NOT NULL,
    subscription_id INTEGER,
    PRIMARY KEY (tenant, client_id, filter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    tenant TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- Order within the session.
    seq INTEGER NOT NULL,
    -- Set once sent; kept so a resumed session resends with the original identifier.
    packet_id INTEGER,
    -- 0 queued, 1 awaiting PUBACK, 2 awaiting PUBREC, 3 awaiting PUBCOMP.
    state INTEGER NOT NULL,
    -- The delivery as an MQTT 5.0 PUBLISH (QoS, RETAIN, subscription ids as sent).
    publish BLOB NOT NULL,
    expires_at_ms INTEGER,
    PRIMARY KEY (tenant, client_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incoming_qos2 (
    tenant TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- Inbound QoS 2 packet identifier received but not yet released (PUBREL).
    packet_id INTEGER NOT NULL,
    PRIMARY KEY (tenant, client_id, packet_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retained (
    tenant TEXT NOT NULL,
    topic TEXT NOT NULL,
    -- The retained message as an MQTT 5.0 PUBLISH.
    publish BLOB NOT NULL,
    expires_at_ms INTEGER,
    PRIMARY KEY (tenant, topic)
) WITHOUT ROWID;
";

/// An open state database.
#[derive(Debug)]
pub(super) struct Database {
    conn: Connection,
    path: PathBuf,
}

impl Database {
    /// Opens or creates the database and its schema.
    pub(super) fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF;"
        ))
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Reads every session and retained message.
    pub(super) fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.load_inner().map_err(|e| self.error(e))
    }

    fn load_inner(&mut self) -> rusqlite::Result<Snapshot> {
        let mut sessions: HashMap<(String, String), StoredSession> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT tenant, client_id, expiry_secs, disconnected_at_ms, next_packet_id,
                    will_publish, will_due_at_ms, will_expiry_secs FROM sessions",
        )?;
        let rows = stmt.query_map([], |r| {
            let tenant: String = r.get(0)?;
            let client_id: String = r.get(1)?;
            let will_publish: Option<Vec<u8>> = r.get(5)?;
            let will = match (will_publish, r.get::<_, Option<i64>>(6)?) {
                (Some(publish), Some(due)) => Some(StoredWill {
                    publish: Bytes::from(publish),
                    due_at_ms: to_u64(due),
                    expiry_secs: r
                        .get::<_, Option<i64>>(7)?
                        .and_then(|v| u32::try_from(v).ok()),
                }),
                _ => None,
            };
            Ok(StoredSession {
                tenant: tenant.clone(),
                client_id: ByteString::from(client_id),
                expiry_secs: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                disconnected_at_ms: r.get::<_, Option<i64>>(3)?.map(to_u64),
                next_packet_id: u16::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                will,
                subscriptions: Vec::new(),
                messages: Vec::new(),
                incoming_qos2: Vec::new(),
            })
        })?;
        for row in rows {
            let s = row?;
            sessions.insert((s.tenant.clone(), s.client_id.to_string()), s);
        }
        drop(stmt);

        let mut stmt = self.conn.prepare(
            "SELECT tenant, client_id, filter, options, subscription_id FROM subscriptions",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = (r.get::<_, String>(0)?, r.get::<_, String>(1)?);
            if let Some(s) = sessions.get_mut(&key) {
                s.subscriptions.push(StoredSubscription {
                    filter: ByteString::from(r.get::<_, String>(2)?),
                    options: u8::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    subscription_id: r
                        .get::<_, Option<i64>>(4)?
                        .and_then(|v| u32::try_from(v).ok()),
                });
            }
        }
        drop(rows);
        drop(stmt);

        let mut stmt = self.conn.prepare(
            "SELECT tenant, client_id, seq, packet_id, state, publish, expires_at_ms
             FROM messages ORDER BY tenant, client_id, seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = (r.get::<_, String>(0)?, r.get::<_, String>(1)?);
            if let Some(s) = sessions.get_mut(&key) {
                s.messages.push(StoredMessage {
                    seq: to_u64(r.get(2)?),
                    packet_id: r
                        .get::<_, Option<i64>>(3)?
                        .and_then(|v| u16::try_from(v).ok()),
                    state: u8::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    publish: Bytes::from(r.get::<_, Vec<u8>>(5)?),
                    expires_at_ms: r.get::<_, Option<i64>>(6)?.map(to_u64),
                });
            }
        }
        drop(rows);
        drop(stmt);

        let mut stmt = self
            .conn
            .prepare("SELECT tenant, client_id, packet_id FROM incoming_qos2")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = (r.get::<_, String>(0)?, r.get::<_, String>(1)?);
            if let (Some(s), Ok(id)) = (sessions.get_mut(&key), u16::try_from(r.get::<_, i64>(2)?))
            {
                s.incoming_qos2.push(id);
            }
        }
        drop(rows);
        drop(stmt);

        let mut retained = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, publish, expires_at_ms FROM retained")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            retained.push(StoredRetained {
                tenant: r.get(0)?,
                publish: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                expires_at_ms: r.get::<_, Option<i64>>(2)?.map(to_u64),
            });
        }
        drop(rows);
        drop(stmt);

        Ok(Snapshot {
            sessions: sessions.into_values().collect(),
            retained,
        })
    }

    fn apply(tx: &rusqlite::Transaction<'_>, op: &StoreOp) -> rusqlite::Result<()> {
        match op {
            StoreOp::UpsertSession {
                tenant,
                client_id,
                expiry_secs,
                next_packet_id,
            } => {
                tx.prepare_cached(
                    "INSERT INTO sessions (tenant, client_id, expiry_secs, next_packet_id)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, client_id) DO UPDATE SET
                        expiry_secs = excluded.expiry_secs,
                        next_packet_id = excluded.next_packet_id",
                )?
                .execute(params![
                    tenant.as_str(),
                    &**client_id,
                    expiry_secs,
                    next_packet_id
                ])?;
            }
            StoreOp::SetOffline {
                tenant,
                client_id,
                disconnected_at_ms,
                will,
            } => {
                tx.prepare_cached(
                    "UPDATE sessions SET disconnected_at_ms = ?3, will_publish = ?4,
                        will_due_at_ms = ?5, will_expiry_secs = ?6
                     WHERE tenant = ?1 AND client_id = ?2",
                )?
                .execute(params![
                    tenant.as_str(),
                    &**client_id,
                    disconnected_at_ms.map(to_i64),
                    will.as_ref().map(|w| &w.publish[..]),
                    will.as_ref().map(|w| to_i64(w.due_at_ms)),
                    will.as_ref().and_then(|w| w.expiry_secs),
                ])?;
            }
            StoreOp::DeleteSession { tenant, client_id } => {
                for table in ["sessions", "subscriptions", "messages", "incoming_qos2"] {
                    tx.prepare_cached(&format!(
                        "DELETE FROM {table} WHERE tenant = ?1 AND client_id = ?2"
                    ))?
                    .execute(params![tenant.as_str(), &**client_id])?;
                }
            }
            StoreOp::PutSubscription {
                tenant,
                client_id,
                subscription,
            } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO subscriptions
                        (tenant, client_id, filter, options, subscription_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    tenant.as_str(),
                    &**client_id,
                    &*subscription.filter,
                    subscription.options,
                    subscription.subscription_id
                ])?;
            }
            StoreOp::DeleteSubscription {
                tenant,
                client_id,
                filter,
            } => {
                tx.prepare_cached(
                    "DELETE FROM subscriptions WHERE tenant = ?1 AND client_id = ?2 AND filter = ?3",
                )?
                .execute(params![tenant.as_str(), &**client_id, &**filter])?;
            }
            StoreOp::PutMessage {
                tenant,
                client_id,
                message,
                stream_seq: _,
            } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO messages
                        (tenant, client_id, seq, packet_id, state, publish, expires_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    tenant.as_str(),
                    &**client_id,
                    to_i64(message.seq),
                    message.packet_id,
                    message.state,
                    &message.publish[..],
                    message.expires_at_ms.map(to_i64)
                ])?;
            }
            StoreOp::UpdateMessage {
                tenant,
                client_id,
                seq,
                packet_id,
                state,
            } => {
                tx.prepare_cached(
                    "UPDATE messages SET packet_id = ?4, state = ?5
                     WHERE tenant = ?1 AND client_id = ?2 AND seq = ?3",
                )?
                .execute(params![
                    tenant.as_str(),
                    &**client_id,
                    to_i64(*seq),
                    packet_id,
                    state
                ])?;
            }
            StoreOp::DeleteMessage {
                tenant,
                client_id,
                seq,
            } => {
                tx.prepare_cached(
                    "DELETE FROM messages WHERE tenant = ?1 AND client_id = ?2 AND seq = ?3",
                )?
                .execute(params![tenant.as_str(), &**client_id, to_i64(*seq)])?;
            }
            StoreOp::AddIncomingQos2 {
                tenant,
                client_id,
                packet_id,
                after: _,
            } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO incoming_qos2 (tenant, client_id, packet_id)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![tenant.as_str(), &**client_id, packet_id])?;
            }
            StoreOp::RemoveIncomingQos2 {
                tenant,
                client_id,
                packet_id,
            } => {
                tx.prepare_cached(
                    "DELETE FROM incoming_qos2
                     WHERE tenant = ?1 AND client_id = ?2 AND packet_id = ?3",
                )?
                .execute(params![tenant.as_str(), &**client_id, packet_id])?;
            }
            StoreOp::PutRetained {
                tenant,
                topic,
                publish,
                expires_at_ms,
            } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO retained (tenant, topic, publish, expires_at_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    tenant.as_str(),
                    &**topic,
                    &publish[..],
                    expires_at_ms.map(to_i64)
                ])?;
            }
            StoreOp::DeleteRetained { tenant, topic } => {
                tx.prepare_cached("DELETE FROM retained WHERE tenant = ?1 AND topic = ?2")?
                    .execute(params![tenant.as_str(), &**topic])?;
            }
        }
        Ok(())
    }

    fn apply_batch(&mut self, batch: &[(Ticket, StoreOp)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for (_, op) in batch {
            Self::apply(&tx, op)?;
        }
        tx.commit()
    }
}

/// The writer thread: applies batches until every sender is gone, then returns.
pub(super) fn run_writer(
    mut db: Database,
    rx: mpsc::Receiver<(Ticket, StoreOp)>,
    commit: &CommitState,
) {
    let mut batch = Vec::with_capacity(256);
    // Once a batch failed, nothing later may be reported committed: an acknowledgement must never
    // go out for a change that follows one that was lost.
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let last = batch.last().map_or(0, |(t, _)| *t);
        let started = Instant::now();
        if failed {
            batch.clear();
            continue;
        }
        if let Err(e) = db.apply_batch(&batch) {
            failed = true;
            // Nothing in this batch is acknowledged to anyone: the tickets are never reported
            // committed, so the connections waiting on them never send their PUBACK/PUBREC.
            tracing::error!(
                error = %db.error(e),
                ops = batch.len(),
                "state write failed; from now on no acknowledgement that depends on durable \
                 state is sent. Check free disk space and permissions of the data directory, \
                 then restart"
            );
            batch.clear();
            continue;
        }
        tracing::trace!(ops = batch.len(), elapsed = ?started.elapsed(), "state batch committed");
        batch.clear();
        commit.publish(last);
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
