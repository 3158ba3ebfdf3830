//! `kill -9` of the edge holding 200 persistent sessions under steady QoS 1 and QoS 2 load, as
//! real processes (`stratus control-plane`, two `stratus edge` of a pool of their own over the
//! shared NATS and Redis) and packet-level clients.
//!
//! A checker classifies every message a publisher had acknowledged (PUBACK, or PUBREC for
//! QoS 2) as delivered, lost or duplicated. A subscriber behaves as MQTT asks of a receiver: a
//! QoS 2 PUBLISH whose packet id awaits PUBREL is a retransmission, not a new message (it keeps
//! that state across reconnects, like the session does). Expected: 0 lost, no QoS 2 message
//! delivered twice, every session resumed on the surviving edge with Session Present 1, every
//! retransmitted in-flight message with the packet id it was first sent with, no new message
//! under a packet id the client still holds awaiting PUBREL, and the will of each killed
//! connection published exactly once within 15 s.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cluster_support::codec_client::{CodecClient, ConnectSpec};
use cluster_support::{ControlPlane, Edge, eventually};
use parking_lot::Mutex;
use stratus_codec::{Ack, Packet, ProtocolVersion, QoS};
use tokio::time::Instant;

/// Persistent sessions on the edge that is killed.
const SESSIONS: usize = 200;
/// Publishing connections (on the surviving edge).
const PUBLISHERS: usize = 4;

/// What every party saw.
#[derive(Default)]
struct Ledger {
    /// Message id -> QoS, for every message a publisher got PUBACK/PUBREC for.
    acked: Mutex<HashMap<String, QoS>>,
    /// Message id -> times delivered to the application.
    delivered: Mutex<HashMap<String, usize>>,
    /// Retransmissions (DUP) whose packet id had carried another message.
    pid_mismatches: AtomicUsize,
    /// New (not DUP) QoS 2 PUBLISHes under a packet id still awaiting PUBREL: the broker reused
    /// an id the client holds, and the client drops the message as a retransmission.
    pid_reuses: AtomicUsize,
    /// Retransmissions seen after a reconnect.
    retransmissions: AtomicUsize,
    /// Reconnects answered with Session Present 1 / 0.
    resumed: AtomicUsize,
    not_resumed: AtomicUsize,
    /// Session -> what its client saw, in order (printed for sessions that lost messages).
    traces: Mutex<HashMap<usize, Vec<String>>>,
}

impl Ledger {
    fn trace(&self, session: usize, event: String) {
        self.traces.lock().entry(session).or_default().push(event);
    }
}

fn session_qos(i: usize) -> QoS {
    if i % 4 < 2 {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}

fn spec<'a>(id: &'a str, will: &'a str, i: usize) -> ConnectSpec<'a> {
    let v5 = i.is_multiple_of(2);
    ConnectSpec {
        version: if v5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V3_1_1
        },
        client_id: id,
        clean_start: false,
        expiry_secs: v5.then_some(600),
        will: Some((will, b"gone")),
        will_delay_secs: 0,
    }
}

/// One persistent subscriber: connects to `first`, then after losing it to `second`, until
/// `stop`.
#[allow(clippy::too_many_arguments)]
async fn subscriber(
    i: usize,
    pool: String,
    first: SocketAddr,
    second: SocketAddr,
    ledger: Arc<Ledger>,
    ready: Arc<AtomicUsize>,
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let id = format!("{pool}-s{i}");
    let will = format!("sk/will/{i}");
    let (mut conn, ack) = CodecClient::connect(first, &spec(&id, &will, i))
        .await
        .unwrap();
    assert!(!ack.session_present);
    conn.subscribe(&format!("sk/m/{i}"), session_qos(i))
        .await
        .unwrap();
    ready.fetch_add(1, Ordering::SeqCst);
    // Receiver state that outlives connections, as the MQTT session does.
    let mut qos2_awaiting_rel: HashSet<u16> = HashSet::new();
    let mut last_by_pid: HashMap<u16, String> = HashMap::new();
    let mut reconnected = false;
    loop {
        match conn.recv(Duration::from_millis(200)).await {
            Ok(Some(Packet::Publish(p))) => {
                let msg = String::from_utf8(p.payload.to_vec()).unwrap();
                let pid = p.packet_id.unwrap();
                if p.dup {
                    if reconnected {
                        ledger.retransmissions.fetch_add(1, Ordering::Relaxed);
                    }
                    if last_by_pid.get(&pid.get()).is_some_and(|m| *m != msg) {
                        ledger.pid_mismatches.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if p.qos == QoS::ExactlyOnce && !p.dup && qos2_awaiting_rel.contains(&pid.get()) {
                    ledger.pid_reuses.fetch_add(1, Ordering::Relaxed);
                }
                last_by_pid.insert(pid.get(), msg.clone());
                let fresh = p.qos != QoS::ExactlyOnce || qos2_awaiting_rel.insert(pid.get());
                ledger.trace(
                    i,
                    format!("PUBLISH {msg} pid {pid} dup {} fresh {fresh}", p.dup),
                );
                if fresh {
                    *ledger.delivered.lock().entry(msg).or_default() += 1;
                }
                let answer = match p.qos {
                    QoS::ExactlyOnce => Packet::PubRec(Ack::success(pid)),
                    _ => Packet::PubAck(Ack::success(pid)),
                };
                let _ = conn.send(&answer).await;
            }
            Ok(Some(Packet::PubRel(a))) => {
                qos2_awaiting_rel.remove(&a.packet_id.get());
                ledger.trace(i, format!("PUBREL {}", a.packet_id));
                let _ = conn.send(&Packet::PubComp(Ack::success(a.packet_id))).await;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(_) => {
                assert!(
                    killed.load(Ordering::SeqCst),
                    "session {i} lost its connection before the kill"
                );
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match CodecClient::connect(second, &spec(&id, &will, i)).await {
                        Ok((c, ack)) if ack.reason == stratus_codec::ReasonCode::Success => {
                            ledger.trace(
                                i,
                                format!("reconnected, session present {}", ack.session_present),
                            );
                            if ack.session_present {
                                ledger.resumed.fetch_add(1, Ordering::SeqCst);
                            } else {
                                ledger.not_resumed.fetch_add(1, Ordering::SeqCst);
                            }
                            conn = c;
                            break;
                        }
                        other => {
                            assert!(
                                Instant::now() < deadline,
                                "session {i} cannot reconnect: {:?}",
                                other.map(|(_, a)| a)
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                reconnected = true;
            }
        }
    }
}

/// Publishes to the sessions `k, k + PUBLISHERS, …` in turn until `stop`, recording what was
/// acknowledged.
async fn publisher(
    k: usize,
    pool: String,
    addr: SocketAddr,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let id = format!("{pool}-p{k}");
    let (mut conn, _) = CodecClient::connect(
        addr,
        &ConnectSpec {
            version: ProtocolVersion::V5,
            client_id: &id,
            clean_start: true,
            expiry_secs: None,
            will: None,
            will_delay_secs: 0,
        },
    )
    .await
    .unwrap();
    let mut n = 0u64;
    let mut packet = 0u16;
    while !stop.load(Ordering::SeqCst) {
        for i in (k..SESSIONS).step_by(PUBLISHERS) {
            n += 1;
            packet = packet.wrapping_add(1).max(1);
            let msg = format!("{i}-{k}-{n}");
            let qos = session_qos(i);
            if conn
                .publish(&format!("sk/m/{i}"), qos, packet, msg.as_bytes())
                .await
                .unwrap()
            {
                ledger.acked.lock().insert(msg, qos);
            }
        }
    }
}

/// Prints, per session, the acknowledged messages never delivered and what that session did
/// receive around them (to tell a lost tail from a hole in the middle).
fn report_losses(ledger: &Ledger) {
    let acked = ledger.acked.lock();
    let delivered = ledger.delivered.lock();
    let mut by_session: HashMap<usize, (Vec<&str>, usize)> = HashMap::new();
    for m in acked.keys() {
        let session: usize = m
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        let entry = by_session.entry(session).or_default();
        if delivered.contains_key(m) {
            entry.1 += 1;
        } else {
            entry.0.push(m);
        }
    }
    let mut lossy: Vec<_> = by_session
        .into_iter()
        .filter(|(_, (lost, _))| !lost.is_empty())
        .collect();
    lossy.sort_by_key(|(s, _)| *s);
    println!(
        "losses: {} sessions lost acknowledged messages",
        lossy.len()
    );
    let traces = ledger.traces.lock();
    for (session, _) in lossy.iter().take(3) {
        println!("  trace of session {session}: {:?}", traces.get(session));
    }
    for (session, (mut lost, got)) in lossy.into_iter().take(20) {
        lost.sort_by_key(|m| m.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()));
        println!(
            "  session {session} ({:?}, v{}): {} lost, {got} delivered; lost: {:?}",
            session_qos(session),
            if session.is_multiple_of(2) { 5 } else { 4 },
            lost.len(),
            lost.iter().take(10).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_edge_of_200_persistent_sessions_loses_nothing() {
    let nats_url = stratus_testkit::shared_nats_url();
    let redis_url = stratus_testkit::shared_redis_url();
    let pool = stratus_testkit::unique_name("sk");
    let plane = ControlPlane::start(&nats_url).await;
    let edge_a = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-a", 3);
    let edge_b = Edge::start(&plane, &nats_url, &redis_url, &pool, "edge-b", 3);

    let (mut watcher, _) = CodecClient::connect(
        edge_b.mqtt,
        &ConnectSpec {
            version: ProtocolVersion::V5,
            client_id: &format!("{pool}-watch"),
            clean_start: true,
            expiry_secs: None,
            will: None,
            will_delay_secs: 0,
        },
    )
    .await
    .unwrap();
    watcher
        .subscribe("sk/will/#", QoS::AtLeastOnce)
        .await
        .unwrap();

    let ledger = Arc::new(Ledger::default());
    let ready = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    let stop_publishers = Arc::new(AtomicBool::new(false));
    let mut subscribers = Vec::new();
    for i in 0..SESSIONS {
        subscribers.push(tokio::spawn(subscriber(
            i,
            pool.clone(),
            edge_a.mqtt,
            edge_b.mqtt,
            Arc::clone(&ledger),
            Arc::clone(&ready),
            Arc::clone(&killed),
            Arc::clone(&stop_subscribers),
        )));
    }
    eventually(Duration::from_secs(60), "every session subscribed", || {
        ready.load(Ordering::SeqCst) == SESSIONS
    })
    .await;
    let mut publishers = Vec::new();
    for k in 0..PUBLISHERS {
        publishers.push(tokio::spawn(publisher(
            k,
            pool.clone(),
            edge_b.mqtt,
            Arc::clone(&ledger),
            Arc::clone(&stop_publishers),
        )));
    }
    eventually(
        Duration::from_secs(30),
        "steady load before the kill",
        || ledger.delivered.lock().len() >= 2 * SESSIONS,
    )
    .await;

    killed.store(true, Ordering::SeqCst);
    edge_a.process.signal("-KILL");
    let killed_at = Instant::now();

    // Wills: each killed connection's, exactly once, within 15 s.
    let mut wills: HashMap<String, usize> = HashMap::new();
    while wills.len() < SESSIONS {
        let left = (killed_at + Duration::from_secs(15)).saturating_duration_since(Instant::now());
        match watcher.recv(left).await.unwrap() {
            Some(Packet::Publish(p)) => {
                if let Some(id) = p.packet_id {
                    watcher
                        .send(&Packet::PubAck(Ack::success(id)))
                        .await
                        .unwrap();
                }
                *wills.entry(p.topic.to_string()).or_default() += 1;
            }
            Some(_) => {}
            None => panic!(
                "{} of {SESSIONS} wills within 15 s of the kill",
                wills.len()
            ),
        }
    }
    let wills_after = killed_at.elapsed();

    // Load continues on the surviving edge while the sessions resume there.
    eventually(Duration::from_secs(60), "every session resumed", || {
        ledger.resumed.load(Ordering::SeqCst) + ledger.not_resumed.load(Ordering::SeqCst)
            >= SESSIONS
    })
    .await;
    let acked_at_resume = ledger.acked.lock().len();
    eventually(Duration::from_secs(30), "load after the resumes", || {
        ledger.acked.lock().len() >= acked_at_resume + 2 * SESSIONS
    })
    .await;
    stop_publishers.store(true, Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    // Not an assertion yet: on a timeout the checker below names what was lost.
    let all_delivered = || {
        let delivered = ledger.delivered.lock();
        ledger
            .acked
            .lock()
            .keys()
            .all(|m| delivered.contains_key(m))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_delivered() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !all_delivered() {
        report_losses(&ledger);
    }
    // A will marker: anything still in flight towards the watcher arrives before it.
    let (mut marker, _) = CodecClient::connect(
        edge_b.mqtt,
        &ConnectSpec {
            version: ProtocolVersion::V5,
            client_id: &format!("{pool}-marker"),
            clean_start: true,
            expiry_secs: None,
            will: None,
            will_delay_secs: 0,
        },
    )
    .await
    .unwrap();
    assert!(
        marker
            .publish("sk/will/~marker", QoS::AtLeastOnce, 1, b"m")
            .await
            .unwrap()
    );
    loop {
        match watcher.recv(Duration::from_secs(10)).await.unwrap() {
            Some(Packet::Publish(p)) => {
                if let Some(id) = p.packet_id {
                    watcher
                        .send(&Packet::PubAck(Ack::success(id)))
                        .await
                        .unwrap();
                }
                if &*p.topic == "sk/will/~marker" {
                    break;
                }
                *wills.entry(p.topic.to_string()).or_default() += 1;
            }
            Some(_) => {}
            None => panic!("the marker did not arrive"),
        }
    }
    stop_subscribers.store(true, Ordering::SeqCst);
    for s in subscribers {
        s.await.unwrap();
    }

    let acked = ledger.acked.lock().clone();
    let delivered = ledger.delivered.lock().clone();
    let lost = acked.keys().filter(|m| !delivered.contains_key(*m)).count();
    let dup_qos1 = acked
        .iter()
        .filter(|(m, q)| **q == QoS::AtLeastOnce && delivered.get(*m).is_some_and(|n| *n > 1))
        .count();
    let dup_qos2 = acked
        .iter()
        .filter(|(m, q)| **q == QoS::ExactlyOnce && delivered.get(*m).is_some_and(|n| *n > 1))
        .count();
    let unknown = delivered.keys().filter(|m| !acked.contains_key(*m)).count();
    let wills_twice = wills.values().filter(|n| **n > 1).count();
    println!(
        "checker: acknowledged {}, delivered {}, lost {lost}, duplicated QoS 1 {dup_qos1}, \
         duplicated QoS 2 {dup_qos2}, unknown {unknown}; resumed with Session Present 1: {}, \
         without: {}; retransmissions after resume {}, packet-id mismatches {}, ids reused \
         while awaiting PUBREL {}; wills {} (twice: {wills_twice}) all within {wills_after:?}",
        acked.len(),
        delivered.len(),
        ledger.resumed.load(Ordering::SeqCst),
        ledger.not_resumed.load(Ordering::SeqCst),
        ledger.retransmissions.load(Ordering::SeqCst),
        ledger.pid_mismatches.load(Ordering::SeqCst),
        ledger.pid_reuses.load(Ordering::SeqCst),
        wills.len(),
    );
    assert_eq!(
        ledger.pid_reuses.load(Ordering::SeqCst),
        0,
        "packet ids reused while the client awaited PUBREL"
    );
    assert_eq!(lost, 0, "acknowledged messages lost");
    assert_eq!(dup_qos2, 0, "QoS 2 messages delivered twice");
    assert_eq!(ledger.not_resumed.load(Ordering::SeqCst), 0);
    assert_eq!(ledger.resumed.load(Ordering::SeqCst), SESSIONS);
    assert_eq!(ledger.pid_mismatches.load(Ordering::SeqCst), 0);
    assert_eq!(wills.len(), SESSIONS);
    assert_eq!(wills_twice, 0, "a will published twice");
    drop(edge_b);
    drop(edge_a);
    plane.stop().await;
}
