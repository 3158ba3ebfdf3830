//! Free loopback ports, chosen by the kernel.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a listener bound to
/// port 0, and the listener is closed again. Another process may take it before the caller binds
/// it; the services here retry on new ports when that happens.
///
/// # Panics
///
/// When the machine cannot bind any loopback port (no loopback interface): nothing could run.
pub fn free_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|listener| listener.local_addr()) {
        Ok(address) => address.port(),
        Err(error) => panic!("cannot bind a TCP port on 127.0.0.1: {error}"),
    }
}

/// `count` distinct free ports (held open together while choosing, so they differ).
pub(crate) fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind a TCP port on 127.0.0.1: {error}"),
        })
        .collect();
    listeners
        .iter()
        .map(|listener| match listener.local_addr() {
            Ok(address) => address.port(),
            Err(error) => panic!("cannot read a bound listener's address: {error}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_can_be_bound_again() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(6);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
    }
}
