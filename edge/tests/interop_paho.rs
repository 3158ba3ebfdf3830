//! paho-mqtt 2.x (Python) against a real broker: each test starts a broker on port 0 and runs
//! one scenario of `tests/interop/paho_v311.py` or `paho_v5.py` as a subprocess, which exits 0
//! when the broker behaved and prints why not otherwise (see `tests/interop/paho_peer.py`).
//!
//! Needs `python3` with paho-mqtt 2.x (`pip install 'paho-mqtt>=2,<3'`); without it every test
//! fails saying so.

mod support;

use std::time::Duration;

use support::TestServer;
use support::interop::{interop_dir, require_paho, run_process};
use tokio::process::Command;

/// Longest a scenario may run (the scripts' own watchdog fires at 45 s).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// Which scenario script, by protocol version.
#[derive(Debug, Clone, Copy)]
enum Script {
    V311,
    V5,
}

impl Script {
    fn file(self) -> &'static str {
        match self {
            Script::V311 => "paho_v311.py",
            Script::V5 => "paho_v5.py",
        }
    }
}

/// Runs `scenario` of `script` against `server`, asserting it exits 0.
async fn paho(server: &TestServer, script: Script, scenario: &str) {
    require_paho();
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(interop_dir().join(script.file()))
        .arg("--port")
        .arg(server.port().to_string())
        .arg(scenario)
        // Keep the source tree free of __pycache__.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let what = format!("paho scenario `{scenario}` ({})", script.file());
    run_process(cmd, &what, SCENARIO_TIMEOUT)
        .await
        .assert_success(&what);
}

/// A broker with `$SYS` published every second.
async fn server_with_sys() -> TestServer {
    TestServer::start_with(|cfg| cfg.sys.interval_secs = 1).await
}

// ---- MQTT 3.1.1: the version-independent scenarios (paho_core.py). ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_connects_and_disconnects_cleanly() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "connect_disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_delivers_each_qos_pair_at_the_lower_qos() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "qos_round_trip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_retained_message_reaches_new_subscribers_until_cleared() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "retained_set_clear").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_is_published_when_the_connection_drops() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "will_on_abnormal_close").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_is_discarded_on_clean_disconnect() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "no_will_on_clean_disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_session_receives_messages_queued_while_offline() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "persistent_session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_plus_and_hash_wildcards_match_as_specified() {
    let server = TestServer::start().await;
    paho(&server, Script::V311, "wildcards").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_sys_broker_version_is_readable_and_hidden_from_hash() {
    let server = server_with_sys().await;
    paho(&server, Script::V311, "sys_version").await;
}

// ---- MQTT 5.0: the version-independent scenarios (paho_core.py). ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connects_and_disconnects_cleanly() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "connect_disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_delivers_each_qos_pair_at_the_lower_qos() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "qos_round_trip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_retained_message_reaches_new_subscribers_until_cleared() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "retained_set_clear").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_published_when_the_connection_drops() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "will_on_abnormal_close").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_discarded_on_clean_disconnect() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "no_will_on_clean_disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_persistent_session_receives_messages_queued_while_offline() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "persistent_session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_plus_and_hash_wildcards_match_as_specified() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "wildcards").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_sys_broker_version_is_readable_and_hidden_from_hash() {
    let server = server_with_sys().await;
    paho(&server, Script::V5, "sys_version").await;
}

// ---- MQTT 5.0 features (paho_v5.py). ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_user_properties_are_forwarded_in_order() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "user_properties_in_order").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_content_type_and_payload_format_are_forwarded() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "content_type_and_format").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_response_topic_and_correlation_data_carry_a_reply() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "request_response").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_expired_messages_are_not_delivered_and_expiry_counts_down() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "message_expiry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_deliveries_carry_matching_subscription_identifiers() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "subscription_identifiers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_no_local_subscription_skips_own_publications() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "no_local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_shared_subscription_spreads_messages_over_members() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "shared_subscription").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_client_topic_aliases_are_resolved() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "topic_alias").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_invalid_filter_fails_only_its_own_suback_entry() {
    let server = TestServer::start().await;
    paho(&server, Script::V5, "suback_reason_codes").await;
}
