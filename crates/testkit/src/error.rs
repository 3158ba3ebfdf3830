//! The one error type of the test kit: which service failed, and the end of its log.

use std::{io, path::PathBuf, process::ExitStatus, time::Duration};

/// Why a test service could not be started or restarted.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The program could not be launched at all (usually: not installed, not on `PATH`).
    #[error("could not launch {program} for {service}: {source} ({hint})")]
    Spawn {
        /// The service, e.g. `nats-server n1 (port 4222)`.
        service: String,
        /// The executable looked up on `PATH`.
        program: &'static str,
        /// How to get the program.
        hint: &'static str,
        /// The error from `exec`.
        #[source]
        source: io::Error,
    },
    /// The process exited before it answered.
    #[error("{service} exited during start-up ({status}); last lines of {}:\n{tail}", .log.display())]
    Exited {
        /// The service.
        service: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The process kept running but did not answer before the deadline.
    #[error("{service} was not ready after {waited:?}; last lines of {}:\n{tail}", .log.display())]
    NotReady {
        /// The service.
        service: String,
        /// How long we polled it.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log (several logs, each headed by its path, for a cluster).
        tail: String,
    },
    /// A NATS cluster was asked for with too few nodes to form a JetStream meta group.
    #[error("a NATS cluster needs at least 2 nodes, {requested} requested")]
    ClusterSize {
        /// The node count asked for.
        requested: usize,
    },
    /// Local file-system work (temporary directory, log file, configuration file) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl TestkitError {
    /// True when the service died because one of its ports was taken between our choosing it and
    /// its binding it: starting again on new ports is the remedy.
    pub(crate) fn is_port_conflict(&self) -> bool {
        match self {
            Self::Exited { tail, .. } => {
                let tail = tail.to_ascii_lowercase();
                tail.contains("address already in use") || tail.contains("address in use")
            }
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
