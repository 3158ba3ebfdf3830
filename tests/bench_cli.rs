//! `stratus bench` as a user runs it: the binary's exit status and output.

use std::process::Command;

/// A loopback port nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

#[test]
fn bench_exits_non_zero_when_the_broker_cannot_be_reached() {
    let url = format!("mqtt://127.0.0.1:{}", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["bench", "--url", &url, "--duration", "1", "--json"])
        .output()
        .expect("run stratus bench");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no summary without a broker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the broker"), "{stderr}");
}

#[test]
fn bench_help_documents_every_scenario() {
    let output = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["bench", "--help"])
        .output()
        .expect("run stratus bench --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "p2p", "fan-in", "fan-out", "conns", "--rate", "--json", "--shared",
    ] {
        assert!(help.contains(word), "`{word}` missing from:\n{help}");
    }
}
