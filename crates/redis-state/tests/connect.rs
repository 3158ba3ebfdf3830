//! Connecting: errors that name the URL (without its password) when Redis is not there or does
//! not answer, and namespaces that would break the key layout.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use stratus_redis_state::{CONNECT_TIMEOUT, NodeLeases, RedisStateError, RetainedStore};
use support::{redis_url, unique_namespace};

#[tokio::test]
async fn a_refused_connection_names_the_url_without_the_password() {
    // Bind a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let error = RetainedStore::connect(&url, "stratus:test")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            RedisStateError::Connect { .. } | RedisStateError::ConnectTimeout { .. }
        ),
        "{error:?}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_naming_the_url() {
    // Accepts connections and never replies.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("redis://{addr}");
    let started = Instant::now();
    let error = NodeLeases::connect(&url, "stratus:test").await.unwrap_err();
    let waited = started.elapsed();
    silent.abort();
    assert!(
        matches!(error, RedisStateError::ConnectTimeout { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
    assert!(
        waited < CONNECT_TIMEOUT + Duration::from_secs(2),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn namespaces_that_would_break_hash_tags_are_refused() {
    for namespace in ["", "a{b}", "with space"] {
        let error = RetainedStore::connect(&redis_url(), namespace)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RedisStateError::InvalidNamespace { .. }),
            "{namespace:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn one_connection_serves_both_stores() {
    let conn = stratus_redis_state::connect(&redis_url()).await.unwrap();
    let namespace = unique_namespace("shared_connection");
    let store = RetainedStore::from_manager(conn.clone(), &namespace).unwrap();
    let leases = NodeLeases::from_manager(conn, &namespace).unwrap();
    assert_eq!(store.namespace(), namespace);
    assert!(leases.expired().await.unwrap().is_empty());
    assert_eq!(
        store
            .usage(&support::tenant("acme"))
            .await
            .unwrap()
            .messages,
        0
    );
}
