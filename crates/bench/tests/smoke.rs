//! Bench smoke run: the generator against an in-process `stratus dev` broker on port 0, for about
//! two seconds per scenario. It checks counts (nothing lost, nothing duplicated, every
//! connection held), never speed: rates are fixed and low so a busy CI machine passes too.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use clap::Parser;
use stratus_bench::{BenchArgs, BenchError, Summary};
use stratus_edge::{BrokerConfig, RunningServer, Services};

/// A broker in this process with its own data directory.
struct Broker {
    running: Option<RunningServer>,
    url: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Brokers that also listen on WebSocket by default get port 0 for it too; where the key
        // does not exist the defaults apply.
        let mut config = BrokerConfig::from_toml("ws_listen = \"127.0.0.1:0\"").unwrap_or_default();
        config.data_dir = dir.path().join("data");
        config.mqtt_listen = "127.0.0.1:0".parse().unwrap();
        config.http_listen = "127.0.0.1:0".parse().unwrap();
        config.sys.interval_secs = 0;
        // The control plane `stratus dev` embeds, with the default tenant open to anonymous
        // clients.
        let plane = stratus_control_plane::open_sqlite(&dir.path().join("control-plane.db"))
            .await
            .unwrap();
        let dev = stratus_model::TenantId::new(&config.default_tenant).unwrap();
        plane
            .ensure_tenant(&dev, stratus_policy::Effect::Allow, true)
            .await
            .unwrap();
        let services = Services {
            directory: plane.directory(),
            http: None,
            cluster: None,
        };
        let running = RunningServer::start(config, services).await.unwrap();
        Self {
            url: format!("mqtt://{}", running.mqtt_addr()),
            running: Some(running),
            _dir: dir,
        }
    }

    async fn bench(&self, flags: &[&str]) -> Summary {
        let args = args(&self.url, flags);
        stratus_bench::run(args).await.unwrap()
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(Duration::from_secs(5)).await;
        }
    }
}

fn args(url: &str, flags: &[&str]) -> BenchArgs {
    let base = [
        "bench",
        "--url",
        url,
        "--quiet",
        "--warmup",
        "0.3",
        "--duration",
        "1.7",
        "--drain",
        "2",
    ];
    BenchArgs::try_parse_from(base.iter().chain(flags)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_at_qos_1_loses_nothing() {
    let broker = Broker::start().await;
    let s = broker
        .bench(&[
            "--scenario",
            "p2p",
            "--qos",
            "1",
            "--clients",
            "4",
            "--rate",
            "4000",
        ])
        .await;
    assert!(s.sent > 1000, "{s:#?}");
    assert_eq!(s.acked, s.sent, "{s:#?}");
    assert_eq!(s.lost, 0, "{s:#?}");
    assert_eq!(s.expected, s.sent, "{s:#?}");
    assert!(s.received >= s.sent, "{s:#?}");
    assert!(s.p50_ms.is_some() && s.latency_samples > 0, "{s:#?}");
    assert_eq!(s.connections, 8);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_at_qos_2_delivers_exactly_once() {
    let broker = Broker::start().await;
    let s = broker
        .bench(&[
            "--scenario",
            "p2p",
            "--qos",
            "2",
            "--clients",
            "4",
            "--rate",
            "4000",
        ])
        .await;
    assert!(s.sent > 1000, "{s:#?}");
    assert_eq!(s.acked, s.sent, "{s:#?}");
    assert_eq!(s.lost, 0, "{s:#?}");
    assert_eq!(s.duplicated, 0, "{s:#?}");
    assert_eq!(s.received, s.sent, "{s:#?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_over_mqtt_5_counts_the_same() {
    let broker = Broker::start().await;
    let s = broker
        .bench(&[
            "--scenario",
            "p2p",
            "--qos",
            "1",
            "--protocol",
            "5",
            "--clients",
            "2",
            "--rate",
            "2000",
        ])
        .await;
    assert_eq!(s.protocol, "5.0");
    assert!(s.sent > 500, "{s:#?}");
    assert_eq!((s.lost, s.duplicated, s.refused), (0, 0, 0), "{s:#?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_at_qos_0_reaches_every_subscriber() {
    let broker = Broker::start().await;
    let s = broker
        .bench(&[
            "--scenario",
            "fan-out",
            "--qos",
            "0",
            "--clients",
            "5",
            "--rate",
            "1000",
        ])
        .await;
    assert_eq!((s.publishers, s.subscribers), (1, 5));
    assert!(s.received > 0, "{s:#?}");
    assert_eq!(s.expected, s.sent * 5, "{s:#?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_receives_each_message_exactly_once() {
    let broker = Broker::start().await;
    let s = broker
        .bench(&[
            "--scenario",
            "fan-in",
            "--shared",
            "3",
            "--qos",
            "1",
            "--clients",
            "3",
            "--rate",
            "3000",
        ])
        .await;
    assert_eq!((s.publishers, s.subscribers), (3, 3));
    assert!(s.sent > 1000, "{s:#?}");
    assert_eq!(s.expected, s.sent, "{s:#?}");
    assert_eq!((s.lost, s.duplicated), (0, 0), "{s:#?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_holds_every_connection() {
    let broker = Broker::start().await;
    let s = broker
        .bench(&["--scenario", "conns", "--clients", "200", "--duration", "1"])
        .await;
    assert_eq!(s.connections, 200, "{s:#?}");
    assert_eq!(s.held, Some(200), "{s:#?}");
    assert_eq!(s.connect_failures, 0, "{s:#?}");
    assert!(s.connect_per_sec > 0.0, "{s:#?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_an_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let err = stratus_bench::run(args(&url, &["--clients", "2"]))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn tls_and_websocket_urls_are_refused_before_connecting() {
    for url in ["mqtts://127.0.0.1:8883", "ws://127.0.0.1:8083/mqtt"] {
        let err = stratus_bench::run(args(url, &[])).await.unwrap_err();
        assert!(err.to_string().contains("not supported yet"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_connect_to_the_sub_url() {
    let broker = Broker::start().await;
    // The same broker under another name: every message still arrives.
    let port = broker.url.rsplit(':').next().unwrap().to_owned();
    let other_name = format!("mqtt://localhost:{port}");
    let s = broker
        .bench(&[
            "--sub-url",
            &other_name,
            "--qos",
            "1",
            "--clients",
            "2",
            "--rate",
            "1000",
        ])
        .await;
    assert!(s.sent > 500, "{s:#?}");
    assert_eq!((s.lost, s.received >= s.sent), (0, true), "{s:#?}");
    // Nothing listens at this sub-url: the subscribers cannot connect, so the run fails.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("mqtt://127.0.0.1:{free}");
    let err = stratus_bench::run(args(
        &broker.url,
        &["--sub-url", &nowhere, "--clients", "2"],
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, BenchError::Unreachable { .. }), "{err}");
    let err = stratus_bench::run(args(
        &broker.url,
        &["--scenario", "conns", "--sub-url", &broker.url],
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--sub-url"), "{err}");
    broker.stop().await;
}
