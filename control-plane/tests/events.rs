//! Change events on NATS: every API change reaches subject `ctl.changes` as JSON (on SQLite and
//! PostgreSQL, through the shared NATS server of `scripts/test.sh`), and a resync follows
//! whenever events may have been lost (on a NATS server the test owns).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures_util::StreamExt;
use serde_json::json;
use stratus_control_plane::forward_changes;
use stratus_model::{CHANGE_SUBJECT, ChangeEvent, TenantId};
use support::TestDb;
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout};

const DEADLINE: Duration = Duration::from_secs(10);

backend_tests!(api_changes_are_published_on_nats_as_json);

async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to NATS at {url}: {e}"))
}

/// The next event on `subscriber` that `wanted` accepts (other tests publish on the same
/// subject), within the deadline.
async fn next_matching(
    subscriber: &mut async_nats::Subscriber,
    wanted: impl Fn(&ChangeEvent) -> bool,
) -> (ChangeEvent, serde_json::Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let message = tokio::time::timeout_at(deadline, subscriber.next())
            .await
            .expect("no matching change event on NATS before the deadline")
            .expect("subscription ended");
        let event: ChangeEvent = serde_json::from_slice(&message.payload).unwrap();
        if wanted(&event) {
            return (event, serde_json::from_slice(&message.payload).unwrap());
        }
    }
}

async fn api_changes_are_published_on_nats_as_json(db: &TestDb) {
    let url = stratus_testkit::shared_nats_url();
    let nats = connect(&url).await;
    let mut subscriber = nats.subscribe(CHANGE_SUBJECT).await.unwrap();
    nats.flush().await.unwrap();
    let forwarder = db.cp.forward_changes_to_nats(connect(&url).await);

    let slug = stratus_testkit::unique_name("ev");
    let tenant = TenantId::new(&slug).unwrap();
    db.tenant(&slug).await;
    let mine = |event: &ChangeEvent| match event {
        ChangeEvent::Tenant(t) | ChangeEvent::Rules(t) | ChangeEvent::JwtKeys(t) => *t == tenant,
        ChangeEvent::Device { tenant: t, .. } => *t == tenant,
        ChangeEvent::Resync => false,
    };
    let (event, wire) = next_matching(&mut subscriber, mine).await;
    assert_eq!(event, ChangeEvent::Tenant(tenant.clone()));
    assert_eq!(wire, json!({ "Tenant": slug }));

    let reply = db
        .admin(
            Method::POST,
            &format!("/api/v1/tenants/{slug}/devices"),
            Some(json!({"username": "alice"})),
        )
        .await;
    let device_id = reply.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (event, wire) = next_matching(&mut subscriber, mine).await;
    assert_eq!(
        event,
        ChangeEvent::Device {
            tenant,
            device_id: device_id.clone()
        }
    );
    // The documented wire form.
    assert_eq!(
        wire,
        json!({"Device": {"tenant": slug, "device_id": device_id}})
    );
    assert!(forwarder.counts().published >= 2);
    assert_eq!(forwarder.counts().failures, 0);
    forwarder.stop().await;
}

#[test]
fn the_json_form_of_change_events_is_stable() {
    let acme = TenantId::new("acme").unwrap();
    let cases = [
        (ChangeEvent::Tenant(acme.clone()), json!({"Tenant": "acme"})),
        (
            ChangeEvent::Device {
                tenant: acme.clone(),
                device_id: "d1".to_owned(),
            },
            json!({"Device": {"tenant": "acme", "device_id": "d1"}}),
        ),
        (ChangeEvent::Rules(acme.clone()), json!({"Rules": "acme"})),
        (ChangeEvent::JwtKeys(acme), json!({"JwtKeys": "acme"})),
        (ChangeEvent::Resync, json!("Resync")),
    ];
    for (event, wire) in cases {
        assert_eq!(serde_json::to_value(&event).unwrap(), wire);
        assert_eq!(serde_json::from_value::<ChangeEvent>(wire).unwrap(), event);
    }
}

/// A NATS server this test owns (so no other test's resync is mistaken for ours).
async fn own_nats() -> stratus_testkit::NatsServer {
    tokio::task::spawn_blocking(stratus_testkit::NatsServer::start)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_forwarder_that_fell_behind_publishes_a_resync() {
    let server = own_nats().await;
    let nats = connect(&server.url()).await;
    let mut subscriber = nats.subscribe(CHANGE_SUBJECT).await.unwrap();
    nats.flush().await.unwrap();

    let (events, changes) = broadcast::channel(2);
    let acme = TenantId::new("acme").unwrap();
    for _ in 0..5 {
        events.send(ChangeEvent::Rules(acme.clone())).unwrap();
    }
    let forwarder = forward_changes(changes, connect(&server.url()).await);
    let mut received = Vec::new();
    for _ in 0..3 {
        let message = timeout(DEADLINE, subscriber.next()).await.unwrap().unwrap();
        received.push(serde_json::from_slice::<ChangeEvent>(&message.payload).unwrap());
    }
    assert_eq!(
        received,
        [
            ChangeEvent::Resync,
            ChangeEvent::Rules(acme.clone()),
            ChangeEvent::Rules(acme)
        ]
    );
    let counts = forwarder.counts();
    assert_eq!((counts.lagged, counts.resyncs, counts.published), (1, 1, 3));
    forwarder.stop().await;
}

#[tokio::test]
async fn a_forwarder_publishes_a_resync_after_its_nats_connection_comes_back() {
    let mut server = own_nats().await;
    let (events, changes) = broadcast::channel(16);
    let forwarder = forward_changes(changes, connect(&server.url()).await);

    server = tokio::task::spawn_blocking(move || {
        server.kill();
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    let nats = connect(&server.url()).await;
    let mut subscriber = nats.subscribe(CHANGE_SUBJECT).await.unwrap();
    nats.flush().await.unwrap();

    // The forwarder resyncs once its connection is back; an event sent now follows it.
    let deadline = Instant::now() + DEADLINE;
    while forwarder.counts().resyncs == 0 {
        assert!(
            Instant::now() < deadline,
            "no resync after the reconnect: {:?}",
            forwarder.counts()
        );
        tokio::time::sleep_until(Instant::now() + Duration::from_millis(20)).await;
    }
    // Events flow again (the resync itself may have gone out before this subscriber was there).
    let acme = TenantId::new("acme").unwrap();
    events.send(ChangeEvent::JwtKeys(acme.clone())).unwrap();
    let (event, _) = next_matching(&mut subscriber, |e| *e != ChangeEvent::Resync).await;
    assert_eq!(event, ChangeEvent::JwtKeys(acme));
    forwarder.stop().await;
}
