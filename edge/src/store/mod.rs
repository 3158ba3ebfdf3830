//! Durable state of the embedded shape: persistent sessions, their queues and in-flight messages,
//! and retained messages, kept under `--data-dir`.
//!
//! The in-memory broker state is authoritative while the process runs; the store is its
//! write-ahead copy. Changes are submitted as [`StoreOp`]s without blocking (each gets a ticket);
//! one writer thread applies them in batches, one transaction per batch, and publishes the highest
//! committed ticket. A QoS 1/2 acknowledgement whose effects were persisted is sent only once its
//! ticket is committed, so an acknowledged message survives a crash of the process (or of the
//! machine, with `durability = "power"`).

mod ops;
mod record;
mod sqlite;
mod tracker;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

pub(crate) use ops::StoreOp;
pub(crate) use record::{Snapshot, StoredMessage, StoredSession, StoredSubscription, StoredWill};

use crate::config::Durability;

/// A position in the store's commit order. Ticket 0 is always committed.
pub(crate) type Ticket = u64;

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("state database {path}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path} (set another with --data-dir)")]
    DataDir {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the state writer thread")]
    Thread(#[source] std::io::Error),
}

/// The commit position and the tasks waiting for it.
#[derive(Debug, Default)]
pub(crate) struct CommitState {
    committed: AtomicU64,
    waiters: Mutex<Vec<(Ticket, Waker)>>,
}

impl CommitState {
    /// Publishes `ticket` as committed and wakes everyone waiting for it or less.
    pub(crate) fn publish(&self, ticket: Ticket) {
        self.committed.store(ticket, Ordering::Release);
        let ready: Vec<Waker> = {
            let mut waiters = self.waiters.lock();
            let mut ready = Vec::new();
            waiters.retain(|(t, w)| {
                if *t <= ticket {
                    ready.push(w.clone());
                    false
                } else {
                    true
                }
            });
            ready
        };
        for w in ready {
            w.wake();
        }
    }
}

/// The writer thread's input: each change with its ticket.
type OpSender = mpsc::Sender<(Ticket, StoreOp)>;

/// Handle to the durable store; cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    /// Ticket counter and channel, locked together so tickets reach the writer in order.
    sender: Mutex<Option<(Ticket, OpSender)>>,
    commit: Arc<CommitState>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The clustered shape: tickets complete out of order (see `tracker.rs`).
    external: Option<External>,
}

/// The clustered shape's side of the store: changes go to an asynchronous applier (Redis), and
/// other asynchronous writes (JetStream publishes, NATS subscriptions) take tickets too.
#[derive(Debug)]
struct External {
    tracker: tracker::Tracker,
    ops: tokio::sync::mpsc::UnboundedSender<(Ticket, StoreOp)>,
}

/// Changes submitted to a store made with [`Store::external`], for its applier.
pub(crate) type ExternalOps = tokio::sync::mpsc::UnboundedReceiver<(Ticket, StoreOp)>;

impl Store {
    /// Opens (creating if needed) the store in `dir`, loads everything it holds, and starts the
    /// writer thread.
    pub(crate) fn open(dir: &Path, durability: Durability) -> Result<(Self, Snapshot), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("state.sqlite3");
        let mut db = sqlite::Database::open(&path, durability)?;
        let snapshot = db.load()?;
        let (tx, rx) = mpsc::channel();
        let commit = Arc::new(CommitState::default());
        let writer_commit = Arc::clone(&commit);
        let writer = std::thread::Builder::new()
            .name("stratus-store".into())
            .spawn(move || sqlite::run_writer(db, rx, &writer_commit))
            .map_err(StoreError::Thread)?;
        let inner = StoreInner {
            sender: Mutex::new(Some((0, tx))),
            commit,
            writer: Mutex::new(Some(writer)),
            external: None,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            snapshot,
        ))
    }

    /// A store for the clustered shape: nothing on local disk; every change submitted goes to the
    /// returned receiver, whose owner applies it elsewhere and calls [`Store::complete`].
    pub(crate) fn external() -> (Self, ExternalOps) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = StoreInner {
            sender: Mutex::new(None),
            commit: Arc::new(CommitState::default()),
            writer: Mutex::new(None),
            external: Some(External {
                tracker: tracker::Tracker::default(),
                ops: tx,
            }),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// A ticket for an asynchronous write the caller completes with [`Store::complete`]
    /// (clustered shape only; 0, always committed, otherwise).
    pub(crate) fn reserve(&self) -> Ticket {
        self.inner
            .external
            .as_ref()
            .map_or(0, |e| e.tracker.reserve())
    }

    /// Marks a ticket from [`Store::reserve`] or [`ExternalOps`] as done.
    pub(crate) fn complete(&self, ticket: Ticket) {
        if let Some(e) = &self.inner.external {
            e.tracker.complete(ticket, &self.inner.commit);
        }
    }

    /// Queues one change; returns the ticket that will be committed once it is durable.
    pub(crate) fn submit(&self, op: StoreOp) -> Ticket {
        if let Some(e) = &self.inner.external {
            let ticket = e.tracker.reserve();
            if e.ops.send((ticket, op)).is_err() {
                tracing::error!("state applier has stopped; a change was not persisted");
            }
            return ticket;
        }
        let mut guard = self.inner.sender.lock();
        match guard.as_mut() {
            Some((next, tx)) => {
                *next += 1;
                let ticket = *next;
                if tx.send((ticket, op)).is_err() {
                    tracing::error!("state writer has stopped; a change was not persisted");
                }
                ticket
            }
            None => 0,
        }
    }

    /// The highest committed ticket.
    pub(crate) fn committed(&self) -> Ticket {
        self.inner.commit.committed.load(Ordering::Acquire)
    }

    /// Arranges for `waker` to be woken once `ticket` is committed. Returns true (and registers
    /// nothing) if it already is.
    pub(crate) fn wake_when_committed(&self, ticket: Ticket, waker: &Waker) -> bool {
        let mut waiters = self.inner.commit.waiters.lock();
        // Checked under the lock the writer takes after publishing, so no commit is missed.
        if self.committed() >= ticket {
            return true;
        }
        waiters.push((ticket, waker.clone()));
        false
    }

    /// Stops accepting changes, waits until the writer committed everything queued, and closes
    /// the database. Blocking: call from `spawn_blocking` or at the very end.
    pub(crate) fn close(&self) {
        drop(self.inner.sender.lock().take());
        if let Some(handle) = self.inner.writer.lock().take()
            && handle.join().is_err()
        {
            tracing::error!("state writer thread panicked while closing");
        }
    }
}
