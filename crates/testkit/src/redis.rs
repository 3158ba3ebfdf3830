//! [`RedisServer`]: one `redis-server` process that a test owns.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::{TestkitError, nats::START_ATTEMPTS, ports::free_port, process::ServiceProcess};

/// How long the server may take to answer PING after launch.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const INSTALL_HINT: &str = "apt-get install redis-server";

/// One `redis-server` on loopback without persistence (`--save '' --appendonly no`; or with an
/// fsynced AOF, [`RedisServer::start_durable`]), its working directory and log in a temporary
/// directory. Killed (SIGKILL) when dropped.
///
/// Without persistence a [`restart`](Self::restart) comes back empty, as a cache node that crashed
/// does. All methods block; see the crate documentation.
#[derive(Debug)]
pub struct RedisServer {
    // Declared before `_dir`: fields drop in order, so the process dies before its directory goes.
    process: ServiceProcess,
    port: u16,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port and waits (up to 30 s) until it answers PING.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start), but every write is appended to an AOF file and fsynced
    /// before Redis answers (`--appendonly yes --appendfsync always`): [`restart`](Self::restart),
    /// even after [`kill`](Self::kill), comes back with everything it acknowledged.
    pub fn start_durable() -> Result<Self, TestkitError> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, TestkitError> {
        let mut attempt = 1;
        loop {
            match Self::try_start(free_port(), durable) {
                Err(error) if error.is_port_conflict() && attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    fn try_start(port: u16, durable: bool) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("stratus-redis-")
            .tempdir()
            .map_err(|source| {
                TestkitError::io("creating a temporary directory for redis-server", source)
            })?;
        let args = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string().into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            if durable { "yes" } else { "no" }.into(),
            "--appendfsync".into(),
            "always".into(),
            "--daemonize".into(),
            "no".into(),
            "--logfile".into(),
            "".into(),
            "--dir".into(),
            dir.path().as_os_str().to_owned(),
        ];
        let process = ServiceProcess::new(
            format!("redis-server (port {port})"),
            "redis-server",
            INSTALL_HINT,
            args,
            dir.path().join("redis-server.log"),
        );
        let mut server = Self {
            process,
            port,
            _dir: dir,
        };
        server.process.launch()?;
        server.wait_pong()?;
        Ok(server)
    }

    /// The URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id (of the last process when it was killed).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The log file (every run, appended).
    pub fn log_path(&self) -> &Path {
        self.process.log()
    }

    /// Kills the server with SIGKILL, like a crash. Does nothing when it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Pauses the server with SIGSTOP: connections stay open but nothing is answered.
    ///
    /// # Panics
    ///
    /// When the server is not running.
    pub fn stop(&self) {
        self.process.signal(Signal::SIGSTOP);
    }

    /// Resumes a server paused with [`stop`](Self::stop) (SIGCONT).
    ///
    /// # Panics
    ///
    /// When the server is not running.
    pub fn cont(&self) {
        self.process.signal(Signal::SIGCONT);
    }

    /// Starts the server again (killing it first if it runs) on the same port and waits (up to
    /// 30 s) until it answers PING: empty, or with its data when started with
    /// [`start_durable`](Self::start_durable).
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.process.launch()?;
        self.wait_pong()
    }

    fn wait_pong(&mut self) -> Result<(), TestkitError> {
        let port = self.port;
        self.process
            .wait_ready(READY_TIMEOUT, || answers_ping(port))
    }
}

/// True when the server on `port` answers an inline `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0_u8; 7];
        stream.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    probe().unwrap_or(false)
}
