//! The test kit's own tests: each service starts, answers, and is killed, paused and restarted as
//! documented, and leaves no process behind.

#![allow(clippy::unwrap_used)]

mod nats;
mod nats_cluster;
mod redis;

use std::{
    io::Read,
    net::{Ipv4Addr, TcpStream},
    path::Path,
    time::Duration,
};

/// True while a process with this id exists (zombies included: the kit reaps what it kills).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Connects to `port` and reads what the server sends first within `timeout`: `None` when it sends
/// nothing in time (a paused server), the bytes otherwise.
fn greeting_within(stream: &mut TcpStream, timeout: Duration) -> Option<String> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buffer = [0_u8; 256];
    match stream.read(&mut buffer) {
        Ok(read) => Some(String::from_utf8_lossy(&buffer[..read]).into_owned()),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(error) => panic!("reading from the server: {error}"),
    }
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
