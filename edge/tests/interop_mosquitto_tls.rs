//! The Debian mosquitto clients over TLS against a real broker, MQTT 3.1.1 and 5.0:
//! `mosquitto_pub --cafile` to a tenant name reaches `mosquitto_sub` in that tenant (and no other
//! tenant); client certificates (`--cert --key`) of the tenant's CA are accepted and another
//! tenant's are refused; a certificate for another host is refused by the client; after rotation
//! to a new CA only clients trusting the new CA connect. After every refusal the broker keeps
//! serving.
//!
//! mosquitto connects by the name it verifies, and the test names (`acme.mqtt.test`) resolve
//! nowhere, so the clients go through `support::socks::NameProxy` (`--proxy socks5h://...`), which
//! resolves every name to 127.0.0.1: the TLS server name, the certificate check and the broker's
//! tenant resolution all see the name.
//!
//! Needs `mosquitto_pub` / `mosquitto_sub` 2.x (`apt-get install mosquitto-clients`); without
//! them every test fails saying so.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use stratus_edge::config::{ClientAuth, TenantConfig};
use support::TestServer;
use support::clients::{Q5, V5Client};
use support::interop::{Finished, read_all, require_mosquitto_clients, run_process};
use support::pki::{Ca, ServerPki};
use support::socks::NameProxy;
use support::tenant_watch::TenantWatch;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Longest wait for a client process or an expected line.
const WAIT: Duration = Duration::from_secs(10);
/// The tenant endpoint the tests publish through.
const ACME: &str = "acme.mqtt.test";
/// Topic of the readiness probes every `mosquitto_sub` also subscribes to.
const PROBE: &str = "interop-probe/ready";

/// A broker with TLS listeners, tenant `acme`, and the name proxy its clients go through.
struct Setup {
    server: TestServer,
    pki: ServerPki,
    proxy: NameProxy,
}

impl Setup {
    async fn start(tweak: impl FnOnce(&mut stratus_edge::BrokerConfig, &ServerPki)) -> Self {
        let pki = ServerPki::new();
        let server = TestServer::start_with(|c| {
            pki.configure(c, &["acme"]);
            tweak(c, &pki);
        })
        .await;
        let proxy = NameProxy::start().await;
        Self { server, pki, proxy }
    }

    /// `tool -h HOST -p MQTTS_PORT --proxy ... -V VERSION --cafile CA` followed by `args`.
    fn client(
        &self,
        tool: &str,
        host: &str,
        version: &str,
        cafile: &str,
        args: &[&str],
    ) -> Command {
        require_mosquitto_clients();
        let mut cmd = Command::new(tool);
        cmd.args(["-h", host])
            .args(["-p", &self.server.mqtts_addr().port().to_string()])
            .args(["--proxy", &self.proxy.url()])
            .args(["-V", version])
            .args(["--cafile", &self.pki.files.arg(cafile)])
            .args(args);
        cmd
    }

    /// Runs `mosquitto_pub` to `host` trusting `cafile`, with `args` (topic, message, ...).
    async fn publish(&self, host: &str, version: &str, cafile: &str, args: &[&str]) -> Finished {
        let mut cmd = self.client("mosquitto_pub", host, version, cafile, args);
        // Debug output says why a connection failed (on stdout; stderr has only a summary).
        cmd.arg("-d");
        let what = format!("mosquitto_pub -h {host} -V {version} {}", args.join(" "));
        run_process(cmd, &what, WAIT).await
    }

    /// Asserts that `mosquitto_pub` to `host`, trusting the server CA, succeeds (with `-q 1`:
    /// the broker acknowledged).
    async fn publish_ok(&self, host: &str, version: &str, args: &[&str]) {
        let what = format!("mosquitto_pub -h {host} -V {version} {}", args.join(" "));
        self.publish(host, version, "ca.pem", args)
            .await
            .assert_success(&what);
    }
}

/// Asserts that a `mosquitto_pub -d` failed without a CONNACK and said `expected`.
fn assert_refused(done: &Finished, expected: &str, what: &str) {
    let output = format!("{}{}", done.stdout, done.stderr);
    assert!(!done.status.success(), "{what} succeeded:\n{output}");
    assert!(
        !output.contains("received CONNACK"),
        "{what} got a CONNACK:\n{output}"
    );
    assert!(
        output.contains(expected),
        "{what} failed without saying {expected:?}:\n{output}"
    );
}

/// A running `mosquitto_sub`, read line by line.
struct Subscriber {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

impl Subscriber {
    /// Starts `sub`, also subscribed to the probe topic, printing `topic|payload` lines.
    fn spawn(mut sub: Command) -> Self {
        sub.args(["-t", PROBE, "-W", "20", "-F", "%t|%p"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = sub.spawn().expect("cannot start mosquitto_sub");
        let stderr = tokio::spawn(read_all(child.stderr.take()));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// The next line within `wait`; `None` if none came. Panics with its stderr if it ended.
    async fn line(&mut self, wait: Duration) -> Option<String> {
        match timeout(wait, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Some(line),
            Ok(_) => {
                let _ = self.child.wait().await;
                let stderr = (&mut self.stderr).await.unwrap();
                panic!("mosquitto_sub ended early: {stderr}")
            }
            Err(_) => None,
        }
    }

    /// Waits until a probe published by `prober` (a client in the same tenant) comes through,
    /// publishing it again every 100 ms.
    async fn wait_until_subscribed(&mut self, prober: &mut V5Client) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            prober.publish(PROBE, Q5::AtMostOnce, false, "probe").await;
            while let Some(line) = self.line(Duration::from_millis(100)).await {
                if line.starts_with(PROBE) {
                    return;
                }
            }
        }
        panic!("mosquitto_sub: no probe came through within {WAIT:?}");
    }

    /// The next line that is not a probe.
    async fn message(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.line(left).await {
                Some(line) if line.starts_with(PROBE) => {}
                Some(line) => return line,
                None => panic!("mosquitto_sub: no message within {WAIT:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_and_sub_over_tls_to_a_tenant_name_meet_in_that_tenant_only() {
    let setup = Setup::start(|_, _| {}).await;
    let mut watch = TenantWatch::start(setup.server.addr, &["acme", "dev"]).await;
    let mut prober = V5Client::connect_with(setup.server.addr, "prober", |o| {
        o.set_credentials("prober@acme", "");
    })
    .await;
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("mosquitto/tls/{version}");
        let sub = setup.client("mosquitto_sub", ACME, version, "ca.pem", &["-t", &topic]);
        let mut sub = Subscriber::spawn(sub);
        sub.wait_until_subscribed(&mut prober).await;
        let args = ["-t", topic.as_str(), "-m", "hello", "-q", "1"];
        setup.publish_ok(ACME, version, &args).await;
        assert_eq!(sub.message().await, format!("{topic}|hello"));
        watch.assert_only_in("acme", &[&topic]).await;
    }
    // The clients connected by name: SNI, certificate check and tenant all saw it.
    let names = setup.proxy.names_asked();
    assert!(
        !names.is_empty() && names.iter().all(|n| n == ACME),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_certificate_that_does_not_name_the_host() {
    let setup = Setup::start(|_, _| {}).await;
    // No certificate names other.example: the broker serves its default one (localhost).
    for version in ["mqttv311", "mqttv5"] {
        let args = ["-t", "t", "-m", "m", "-q", "1"];
        let done = setup
            .publish("other.example", version, "ca.pem", &args)
            .await;
        assert_refused(
            &done,
            "host name verification failed",
            "mosquitto_pub -h other.example",
        );
    }
    setup
        .publish_ok("localhost", "mqttv5", &["-t", "t", "-m", "m"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_of_the_tenants_ca_is_accepted_and_another_tenants_is_refused() {
    let acme_ca = Ca::new("acme devices CA");
    let beta_ca = Ca::new("beta devices CA");
    let setup = Setup::start(|c, pki| {
        pki.files.write("acme-ca.pem", &acme_ca.pem);
        pki.files.write("beta-ca.pem", &beta_ca.pem);
        pki.files
            .write_leaf("acme-device", &acme_ca.client("sensor-1"));
        pki.files
            .write_leaf("beta-device", &beta_ca.client("sensor-9"));
        c.tls.client_auth = ClientAuth::Required;
        c.tenants = ["acme", "beta"]
            .iter()
            .map(|t| TenantConfig {
                id: (*t).to_owned(),
                client_ca: Some(pki.files.path(&format!("{t}-ca.pem"))),
            })
            .collect();
    })
    .await;
    let mut watch = TenantWatch::start(setup.server.addr, &["acme", "beta", "dev"]).await;
    let files = &setup.pki.files;
    let cert = |stem: &str| {
        let (crt, key) = (
            files.arg(&format!("{stem}.crt")),
            files.arg(&format!("{stem}.key")),
        );
        ["--cert".to_owned(), crt, "--key".to_owned(), key]
    };
    let (own, other) = (cert("acme-device"), cert("beta-device"));
    fn with<'a>(cert: &'a [String; 4], topic: &'a str) -> Vec<&'a str> {
        let mut args: Vec<&str> = cert.iter().map(String::as_str).collect();
        args.extend(["-t", topic, "-m", "reading", "-q", "1"]);
        args
    }

    for version in ["mqttv311", "mqttv5"] {
        setup
            .publish_ok(ACME, version, &with(&own, "mtls/own"))
            .await;
        watch.assert_only_in("acme", &["mtls/own"]).await;

        // TLS 1.3: the client's handshake completes before the broker checks its certificate;
        // mosquitto then reads the broker's alert instead of a CONNACK.
        let done = setup
            .publish(ACME, version, "ca.pem", &with(&other, "mtls/other"))
            .await;
        let what = "mosquitto_pub with a certificate from beta's CA to acme";
        assert_refused(&done, "alert certificate unknown", what);

        let no_cert = ["-t", "mtls/none", "-m", "x", "-q", "1"];
        let done = setup.publish(ACME, version, "ca.pem", &no_cert).await;
        let what = "mosquitto_pub without a certificate (client_auth = required)";
        assert_refused(&done, "alert certificate required", what);
        watch.assert_quiet().await;
    }
    // The broker keeps serving the tenant's devices.
    setup
        .publish_ok(ACME, "mqttv5", &with(&own, "mtls/again"))
        .await;
    watch.assert_only_in("acme", &["mtls/again"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotation_to_a_new_ca_only_clients_trusting_it_connect() {
    let setup = Setup::start(|_, _| {}).await;
    let files = &setup.pki.files;
    let new_ca = Ca::new("Rotated server CA");
    files.write("new-ca.pem", &new_ca.pem);
    let args = ["-t", "rotation", "-m", "m", "-q", "1"];
    setup.publish_ok(ACME, "mqttv5", &args).await;

    files.write_leaf("tenants", &new_ca.server(&[support::pki::WILDCARD]));
    files.write_leaf("default", &new_ca.server(&["localhost"]));
    // New connections get the new certificate once the broker noticed the files changed.
    let deadline = Instant::now() + WAIT;
    loop {
        let done = setup.publish(ACME, "mqttv5", "new-ca.pem", &args).await;
        if done.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not served within {WAIT:?}: {}",
            done.stderr
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for version in ["mqttv311", "mqttv5"] {
        let done = setup.publish(ACME, version, "ca.pem", &args).await;
        assert_refused(
            &done,
            "certificate verify failed",
            "mosquitto_pub trusting the old CA",
        );
        let done = setup.publish(ACME, version, "new-ca.pem", &args).await;
        done.assert_success("mosquitto_pub trusting the new CA");
    }
}
