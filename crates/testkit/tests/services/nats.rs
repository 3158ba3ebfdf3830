//! `NatsServer`: JetStream works, a stream survives kill and restart, SIGSTOP pauses it.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use stratus_testkit::{NatsServer, unique_name};

use crate::{connect, greeting_within, process_exists, runtime};

#[test]
fn nats_server_keeps_a_file_stream_across_kill_and_restart_on_the_same_port() {
    let mut server = NatsServer::start().unwrap();
    let url = server.url();
    assert_eq!(url, format!("nats://127.0.0.1:{}", server.port()));
    let stream_name = unique_name("s");
    let rt = runtime();
    rt.block_on(async {
        let context = jetstream::new(async_nats::connect(&url).await.unwrap());
        context
            .create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("{stream_name}.>")],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        let ack = context
            .publish(format!("{stream_name}.a"), "one".into())
            .await
            .unwrap();
        assert_eq!(ack.await.unwrap().sequence, 1);
    });

    let old_pid = server.pid();
    server.kill();
    assert!(
        !process_exists(old_pid),
        "killed nats-server {old_pid} is still there"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err());

    server.restart().unwrap();
    assert_ne!(server.pid(), old_pid);
    assert_eq!(server.url(), url);
    rt.block_on(async {
        let context = jetstream::new(async_nats::connect(&url).await.unwrap());
        let mut stream = context.get_stream(&stream_name).await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 1);
    });
}

#[test]
fn stopped_nats_server_answers_nothing_until_continued() {
    let server = NatsServer::start().unwrap();
    server.stop();
    // The kernel completes the TCP handshake, but the paused server sends no INFO.
    let mut stream = connect(server.port());
    assert_eq!(
        greeting_within(&mut stream, Duration::from_millis(500)),
        None
    );
    server.cont();
    let greeting = greeting_within(&mut stream, Duration::from_secs(10)).unwrap();
    assert!(greeting.starts_with("INFO "), "{greeting}");
}

#[test]
fn dropped_nats_server_leaves_no_process_and_no_directory() {
    let server = NatsServer::start().unwrap();
    let (pid, store) = (server.pid(), server.store_dir());
    assert!(process_exists(pid));
    assert!(store.exists());
    drop(server);
    assert!(!process_exists(pid), "nats-server {pid} outlived its drop");
    assert!(!store.exists(), "{} outlived its drop", store.display());
}

#[test]
fn nats_server_is_killed_when_a_test_panics() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let server = NatsServer::start().unwrap();
        sender.send(server.pid()).unwrap();
        panic!("test failure while the server runs");
    })
    .join();
    assert!(panicked.is_err());
    let pid = receiver.recv().unwrap();
    assert!(
        !process_exists(pid),
        "nats-server {pid} outlived a panicking test"
    );
}
