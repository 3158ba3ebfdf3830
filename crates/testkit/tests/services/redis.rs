//! `RedisServer`: answers commands, restarts empty on the same URL, SIGSTOP pauses it.

use std::{io::Write, time::Duration};

use redis::AsyncCommands;
use stratus_testkit::RedisServer;

use crate::{connect, greeting_within, process_exists, runtime};

#[test]
fn redis_server_restarts_empty_on_the_same_url() {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    assert_eq!(url, format!("redis://127.0.0.1:{}", server.port()));
    let rt = runtime();
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let () = connection.set("k", "v").await.unwrap();
        let value: String = connection.get("k").await.unwrap();
        assert_eq!(value, "v");
    });

    let old_pid = server.pid();
    server.kill();
    assert!(
        !process_exists(old_pid),
        "killed redis-server {old_pid} is still there"
    );
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        assert!(client.get_multiplexed_async_connection().await.is_err());
    });

    server.restart().unwrap();
    assert_eq!(server.url(), url);
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let exists: bool = connection.exists("k").await.unwrap();
        assert!(
            !exists,
            "a restarted redis-server without persistence kept its data"
        );
    });
}

#[test]
fn stopped_redis_server_answers_nothing_until_continued() {
    let server = RedisServer::start().unwrap();
    server.stop();
    let mut stream = connect(server.port());
    stream.write_all(b"PING\r\n").unwrap();
    assert_eq!(
        greeting_within(&mut stream, Duration::from_millis(500)),
        None
    );
    server.cont();
    assert_eq!(
        greeting_within(&mut stream, Duration::from_secs(10)).unwrap(),
        "+PONG\r\n"
    );
}

#[test]
fn dropped_redis_server_leaves_no_process() {
    let server = RedisServer::start().unwrap();
    let pid = server.pid();
    assert!(process_exists(pid));
    drop(server);
    assert!(!process_exists(pid), "redis-server {pid} outlived its drop");
}
