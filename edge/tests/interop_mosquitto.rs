//! The Debian mosquitto clients (`mosquitto_pub`, `mosquitto_sub`) against a real broker on port
//! 0, over MQTT 3.1.1 and 5.0: QoS round trips, retained messages, Wills, persistent sessions,
//! 5.0 properties and `$SYS/broker/version`.
//!
//! A long-running `mosquitto_sub` is known to be subscribed once it prints a probe message: the
//! test publishes to a probe topic it also subscribed to, again until the probe shows up (with a
//! deadline), and only then publishes what the test is about. `mosquitto_sub` prints every
//! message as one `-F` formatted line (default `topic|qos|retain|payload`).
//!
//! Needs `mosquitto_pub` / `mosquitto_sub` 2.x (`apt-get install mosquitto-clients`); without
//! them every test fails saying so.

mod support;

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use support::TestServer;
use support::interop::{read_all, require_mosquitto_clients, run_process};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Longest wait for an expected message or a client process.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// Output format of a subscriber unless the test passes its own `-F`.
const FORMAT: &str = "%t|%q|%r|%p";
/// Topic of the readiness probes; every long-running subscriber subscribes to it.
const PROBE: &str = "interop-probe/ready";

/// Protocol version passed to the clients with `-V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V311,
    V5,
}

impl Version {
    fn flag(self) -> &'static str {
        match self {
            Version::V311 => "mqttv311",
            Version::V5 => "mqttv5",
        }
    }
}

/// `tool -h 127.0.0.1 -p PORT -V VERSION ARGS`; `args` are separated by spaces (no argument in
/// these tests contains one).
fn client(tool: &str, port: u16, version: Version, args: &str) -> Command {
    require_mosquitto_clients();
    let mut cmd = Command::new(tool);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-V", version.flag()])
        .args(args.split_whitespace());
    cmd
}

/// Runs `mosquitto_pub ARGS` and asserts it succeeded (for QoS 1/2: acknowledged).
async fn publish(port: u16, version: Version, args: &str) {
    let what = format!("mosquitto_pub {args}");
    run_process(client("mosquitto_pub", port, version, args), &what, WAIT)
        .await
        .assert_success(&what);
}

/// Runs a `mosquitto_sub ARGS` that exits by itself (`-C`, `-E`) and returns its output lines.
async fn subscribe_once(port: u16, version: Version, args: &str) -> Vec<String> {
    let what = format!("mosquitto_sub {args}");
    let done = run_process(client("mosquitto_sub", port, version, args), &what, WAIT).await;
    done.assert_success(&what);
    done.stdout.lines().map(str::to_owned).collect()
}

/// A `mosquitto_sub` kept running, subscribed once `start` returns.
struct Subscriber {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Messages that arrived before the probe (retained messages, for instance).
    early: VecDeque<String>,
    stderr: JoinHandle<String>,
    name: String,
}

impl Subscriber {
    /// Starts `mosquitto_sub args...` (plus the probe topic, `-F FORMAT` unless `args` has a
    /// `-F`, and a 30 s `-W` backstop) and waits until a probe message comes through.
    async fn start(port: u16, version: Version, args: &str) -> Self {
        let mut cmd = client("mosquitto_sub", port, version, args);
        cmd.args(["-t", PROBE, "-W", "30"]);
        if !args.split_whitespace().any(|a| a == "-F") {
            cmd.args(["-F", FORMAT]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let name = format!("mosquitto_sub {args}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let stderr = tokio::spawn(read_all(child.stderr.take()));
        let mut sub = Self {
            child,
            lines,
            early: VecDeque::new(),
            stderr,
            name,
        };
        sub.wait_until_subscribed(port, version).await;
        sub
    }

    async fn wait_until_subscribed(&mut self, port: u16, version: Version) {
        let deadline = Instant::now() + WAIT;
        loop {
            if Instant::now() >= deadline {
                let stderr = self.stderr_if_exited().await;
                panic!(
                    "{}: no probe came through within {WAIT:?}{stderr}",
                    self.name
                );
            }
            publish(port, version, &format!("-t {PROBE} -m probe")).await;
            let poll_until = Instant::now() + Duration::from_millis(100);
            while let Some(line) = self.read_line(poll_until).await {
                if line.contains(PROBE) {
                    return;
                }
                self.early.push_back(line);
            }
        }
    }

    /// The next output line before `until`, or `None` at the deadline.
    async fn read_line(&mut self, until: Instant) -> Option<String> {
        let left = until.saturating_duration_since(Instant::now());
        match timeout(left, self.lines.next_line()).await {
            Err(_) => None,
            Ok(Ok(Some(line))) => Some(line),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let stderr = self.stderr_if_exited().await;
                panic!("{} exited early{stderr}", self.name)
            }
        }
    }

    /// Stderr of the process if it has exited (for failure messages).
    async fn stderr_if_exited(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                let err = (&mut self.stderr).await.unwrap_or_default();
                format!(" ({status}); stderr: {err}")
            }
            _ => String::new(),
        }
    }

    /// The next message line (probes skipped); panics after `WAIT`.
    async fn next(&mut self) -> String {
        if let Some(line) = self.early.pop_front() {
            return line;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_line(deadline).await {
                Some(line) if line.contains(PROBE) => continue,
                Some(line) => return line,
                None => panic!("{}: no message within {WAIT:?}", self.name),
            }
        }
    }

    /// The next `n` message lines.
    async fn expect(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(self.next().await);
        }
        got
    }

    /// Panics if a message (other than a late probe) arrives within `QUIET`.
    async fn expect_quiet(&mut self) {
        assert!(
            self.early.is_empty(),
            "{}: unexpected {:?}",
            self.name,
            self.early
        );
        let until = Instant::now() + QUIET;
        while let Some(line) = self.read_line(until).await {
            assert!(
                line.contains(PROBE),
                "{}: unexpected message {line:?}",
                self.name
            );
        }
    }

    /// Kills the process with SIGKILL: its TCP connection closes without DISCONNECT.
    async fn kill(mut self) {
        self.child
            .kill()
            .await
            .unwrap_or_else(|e| panic!("cannot kill {}: {e}", self.name));
    }
}

/// Each publish QoS to each subscription QoS: delivered at the lower of the two.
async fn qos_round_trip(version: Version) {
    let server = TestServer::start().await;
    let port = server.port();
    let mut subs = Vec::new();
    for sub_qos in 0..3 {
        subs.push(Subscriber::start(port, version, &format!("-q {sub_qos} -t qos/t")).await);
    }
    for pub_qos in 0..3 {
        publish(
            port,
            version,
            &format!("-q {pub_qos} -t qos/t -m p{pub_qos}"),
        )
        .await;
    }
    for (sub_qos, sub) in subs.iter_mut().enumerate() {
        let mut got = sub.expect(3).await;
        got.sort();
        let want: Vec<String> = (0..3)
            .map(|p| format!("qos/t|{}|0|p{p}", p.min(sub_qos)))
            .collect();
        assert_eq!(
            got, want,
            "subscription QoS {sub_qos} (topic|qos|retain|payload)"
        );
        sub.expect_quiet().await;
    }
}

/// `-r` retains; `-r -n` clears; a live subscriber gets RETAIN 0.
async fn retained_set_clear(version: Version) {
    let server = TestServer::start().await;
    let port = server.port();
    publish(port, version, "-r -q 1 -t ret/t -m kept").await;
    let got = subscribe_once(port, version, &format!("-q 1 -t ret/t -C 1 -F {FORMAT}")).await;
    assert_eq!(
        got,
        ["ret/t|1|1|kept"],
        "a new subscriber gets it with RETAIN 1"
    );

    publish(port, version, "-r -n -q 1 -t ret/t").await;
    let mut sub = Subscriber::start(port, version, "-q 1 -t ret/t").await;
    assert!(
        sub.early.is_empty(),
        "`-r -n` did not clear it: {:?}",
        sub.early
    );
    publish(port, version, "-r -q 1 -t ret/t -m live").await;
    assert_eq!(
        sub.next().await,
        "ret/t|1|0|live",
        "live subscribers get RETAIN 0 [MQTT-3.3.1-9]"
    );
}

/// A `mosquitto_sub` with a Will killed by SIGKILL: the Will is published.
async fn will_on_kill(version: Version) {
    let server = TestServer::start().await;
    let port = server.port();
    let mut watcher = Subscriber::start(port, version, "-q 1 -t wills/#").await;
    let will = "--will-topic wills/sub --will-payload gone --will-qos 1";
    let dying = Subscriber::start(port, version, &format!("{will} -t x")).await;
    dying.kill().await;
    assert_eq!(watcher.next().await, "wills/sub|1|0|gone");
    watcher.expect_quiet().await;
}

/// A `mosquitto_sub` with a Will that exits normally (`-E`: DISCONNECT after SUBACK): no Will.
async fn no_will_on_clean_exit(version: Version) {
    let server = TestServer::start().await;
    let port = server.port();
    let mut watcher = Subscriber::start(port, version, "-q 1 -t wills/#").await;
    let will = "--will-topic wills/sub --will-payload gone --will-qos 1";
    subscribe_once(port, version, &format!("{will} -t x -E")).await;
    publish(port, version, "-q 1 -t wills/sentinel -m end").await;
    let first = watcher.next().await;
    assert_eq!(
        first, "wills/sentinel|1|0|end",
        "a clean DISCONNECT discards the Will [MQTT-3.1.2-10]"
    );
    watcher.expect_quiet().await;
}

/// QoS 1 messages published while a persistent `mosquitto_sub -c -i` is offline arrive when it
/// comes back. `session` is `-c -i ID` plus, for 5.0, a session expiry.
async fn persistent_session(version: Version, session: &str) {
    let server = TestServer::start().await;
    let port = server.port();
    subscribe_once(port, version, &format!("{session} -q 1 -t inbox/# -E")).await;
    for n in 0..3 {
        publish(port, version, &format!("-q 1 -t inbox/{n} -m queued-{n}")).await;
    }
    let again = format!("{session} -q 1 -t inbox/# -C 3 -W 10 -F {FORMAT}");
    let got = subscribe_once(port, version, &again).await;
    let want: Vec<String> = (0..3)
        .map(|n| format!("inbox/{n}|1|0|queued-{n}"))
        .collect();
    assert_eq!(got, want, "messages queued while offline, in order");
}

/// `mosquitto_sub -t '$SYS/broker/version' -C 1` prints a non-empty version.
async fn sys_version(version: Version) {
    let server = TestServer::start_with(|cfg| cfg.sys.interval_secs = 1).await;
    let got = subscribe_once(server.port(), version, "-t $SYS/broker/version -C 1 -v").await;
    let line = got.first().map(String::as_str).unwrap_or_default();
    let value = line
        .strip_prefix("$SYS/broker/version ")
        .unwrap_or_default();
    assert!(
        !value.trim().is_empty(),
        "expected `$SYS/broker/version <version>`, got {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_each_qos_pair_is_delivered_at_the_lower_qos() {
    qos_round_trip(Version::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_each_qos_pair_is_delivered_at_the_lower_qos() {
    qos_round_trip(Version::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_retained_message_is_set_with_r_and_cleared_with_r_n() {
    retained_set_clear(Version::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_retained_message_is_set_with_r_and_cleared_with_r_n() {
    retained_set_clear(Version::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_is_published_when_the_subscriber_is_killed() {
    will_on_kill(Version::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_published_when_the_subscriber_is_killed() {
    will_on_kill(Version::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_will_is_not_published_when_the_subscriber_exits_cleanly() {
    no_will_on_clean_exit(Version::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_not_published_when_the_subscriber_exits_cleanly() {
    no_will_on_clean_exit(Version::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_session_gets_messages_published_while_offline() {
    persistent_session(Version::V311, "-c -i inbox-311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_persistent_session_gets_messages_published_while_offline() {
    persistent_session(Version::V5, "-c -i inbox-5 -x 60").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_sys_broker_version_is_readable() {
    sys_version(Version::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_sys_broker_version_is_readable() {
    sys_version(Version::V5).await;
}

/// A 5.0 publication with every property `mosquitto_pub -D publish ...` can set that
/// `mosquitto_sub` can show; user property `k` is repeated to check order and duplicates.
const PUBLISH_WITH_PROPERTIES: &str = "-q 1 -t props/t -m hello \
    -D publish user-property k 1 -D publish user-property a 2 -D publish user-property k 3 \
    -D publish content-type text/plain -D publish response-topic replies/here \
    -D publish correlation-data req-7 -D publish message-expiry-interval 60";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_publish_properties_reach_mosquitto_sub_in_order() {
    let server = TestServer::start().await;
    let port = server.port();
    let format = "%t|%C|%P|%R|%D|%p";
    let mut sub =
        Subscriber::start(port, Version::V5, &format!("-q 1 -t props/t -F {format}")).await;
    publish(port, Version::V5, PUBLISH_WITH_PROPERTIES).await;
    assert_eq!(
        sub.next().await,
        "props/t|text/plain|k:1 a:2 k:3|replies/here|req-7|hello",
        "format {format}: user properties must keep their order and duplicates [MQTT-3.3.2-18]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_json_output_includes_the_forwarded_properties() {
    let server = TestServer::start().await;
    let port = server.port();
    let mut sub = Subscriber::start(port, Version::V5, "-q 1 -t props/t -F %j").await;
    publish(port, Version::V5, PUBLISH_WITH_PROPERTIES).await;
    let json = sub.next().await;
    for part in [
        r#""topic":"props/t""#,
        r#""qos":1"#,
        r#""user-properties":{"k":"1","a":"2","k":"3"}"#,
        r#""content-type":"text/plain""#,
        r#""response-topic":"replies/here""#,
        r#""payload":"hello""#,
    ] {
        assert!(json.contains(part), "missing {part} in {json}");
    }
}
