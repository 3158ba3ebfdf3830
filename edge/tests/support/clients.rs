//! Clients for behaviour tests: rumqttc 5.0 and 3.1.1 clients whose event loops run on their own
//! task (events are kept in order, and a test can wait for one kind without losing the others),
//! and (in `packets`) codec-level helpers for what a client library hides or refuses to send.
//!
//! Absence is checked with fences, not sleeps: a message that must not arrive would have been
//! queued before a later message of the same QoS to the same session, so once that later message
//! arrived, anything before it has too.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as mq5;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

pub mod packets;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// One client's events in arrival order, with a backlog of those not yet asked for.
struct Events<E> {
    rx: mpsc::UnboundedReceiver<Result<E, String>>,
    backlog: VecDeque<E>,
    ended: Option<String>,
}

impl<E: Debug> Events<E> {
    fn new(rx: mpsc::UnboundedReceiver<Result<E, String>>) -> Self {
        Self {
            rx,
            backlog: VecDeque::new(),
            ended: None,
        }
    }

    /// What `pick` makes of the first event (oldest first) it recognises (`Some`), which is then
    /// removed; the others stay queued. `None` when `wait` passed or the connection ended first.
    async fn take<T>(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&E) -> Option<T>,
    ) -> Option<T> {
        if let Some((i, t)) = self
            .backlog
            .iter()
            .enumerate()
            .find_map(|(i, e)| pick(e).map(|t| (i, t)))
        {
            self.backlog.remove(i);
            return Some(t);
        }
        let deadline = Instant::now() + wait;
        while self.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.rx.recv()).await {
                Err(_) => return None,
                Ok(None) => self.ended = Some("event loop stopped".to_owned()),
                Ok(Some(Err(e))) => self.ended = Some(e),
                Ok(Some(Ok(event))) => match pick(&event) {
                    Some(t) => return Some(t),
                    None => self.backlog.push_back(event),
                },
            }
        }
        None
    }

    /// Waits until the connection ends; returns why (the event loop's error).
    async fn end(&mut self, wait: Duration) -> Option<String> {
        let _ = self.take(wait, |_: &E| None::<()>).await;
        self.ended.clone()
    }
}

/// Forwards a rumqttc event loop's events into a channel until the connection ends (rumqttc
/// would reconnect if polled after an error; a test wants to see the end instead).
macro_rules! spawn_event_loop {
    ($eventloop:expr) => {{
        let mut eventloop = $eventloop;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(event) => {
                        if tx.send(Ok(event)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:?}")));
                        return;
                    }
                }
            }
        });
        (task, Events::new(rx))
    }};
}

/// A rumqttc MQTT 5.0 client.
pub struct V5Client {
    /// The rumqttc handle.
    pub client: rumqttc::v5::AsyncClient,
    /// The CONNACK the server sent.
    pub connack: mq5::ConnAck,
    events: Events<rumqttc::v5::Event>,
    task: JoinHandle<()>,
}

impl Drop for V5Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rumqttc 5.0 QoS levels.
pub type Q5 = rumqttc::v5::mqttbytes::QoS;

impl V5Client {
    /// Connects with a clean start and rumqttc's defaults.
    pub async fn connect(addr: SocketAddr, id: &str) -> Self {
        Self::connect_with(addr, id, |_| {}).await
    }

    /// Connects after `tweak` adjusted the options; panics if the server refuses.
    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::v5::MqttOptions),
    ) -> Self {
        match Self::try_connect_with(addr, id, tweak).await {
            Ok(c) => c,
            Err(e) => panic!("client {id} could not connect: {e}"),
        }
    }

    /// Connects after `tweak`; the error is rumqttc's (e.g. `ConnectionRefused(QuotaExceeded)`).
    pub async fn try_connect_with(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::v5::MqttOptions),
    ) -> Result<Self, String> {
        let mut options = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        tweak(&mut options);
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 64);
        let connack = match timeout(WAIT, eventloop.poll()).await {
            Err(_) => return Err("no CONNACK in time".to_owned()),
            Ok(Err(e)) => return Err(format!("{e:?}")),
            Ok(Ok(rumqttc::v5::Event::Incoming(mq5::Packet::ConnAck(ack)))) => ack,
            Ok(Ok(other)) => return Err(format!("expected CONNACK, got {other:?}")),
        };
        let (task, events) = spawn_event_loop!(eventloop);
        Ok(Self {
            client,
            connack,
            events,
            task,
        })
    }
}

impl V5Client {
    async fn take<T>(
        &mut self,
        what: &str,
        pick: impl FnMut(&rumqttc::v5::Event) -> Option<T>,
    ) -> T {
        match self.events.take(WAIT, pick).await {
            Some(t) => t,
            None => panic!(
                "no {what} within {WAIT:?} (connection ended: {:?}; unclaimed events: {:?})",
                self.events.ended, self.events.backlog
            ),
        }
    }

    /// Subscribes to `filters` in one SUBSCRIBE, with Subscription Identifier `id` if given.
    pub async fn subscribe_filters(
        &mut self,
        filters: Vec<mq5::Filter>,
        id: Option<usize>,
    ) -> mq5::SubAck {
        let sent = match id {
            Some(id) => {
                let props = mq5::SubscribeProperties {
                    id: Some(id),
                    user_properties: Vec::new(),
                };
                self.client
                    .subscribe_many_with_properties(filters, props)
                    .await
            }
            None => self.client.subscribe_many(filters).await,
        };
        sent.unwrap();
        self.take("SUBACK", |e| match e {
            rumqttc::v5::Event::Incoming(mq5::Packet::SubAck(ack)) => Some(ack.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes to one filter with default options; panics unless granted.
    pub async fn subscribe(&mut self, filter: &str, qos: Q5) {
        let ack = self
            .subscribe_filters(vec![mq5::Filter::new(filter, qos)], None)
            .await;
        assert_eq!(
            ack.return_codes,
            [mq5::SubscribeReasonCode::Success(qos)],
            "SUBACK for {filter}"
        );
    }

    /// Publishes without waiting for anything.
    pub async fn publish(&mut self, topic: &str, qos: Q5, retain: bool, payload: impl Into<Bytes>) {
        self.client
            .publish(topic, qos, retain, payload.into())
            .await
            .unwrap();
    }

    /// Publishes with properties without waiting for anything.
    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: Q5,
        retain: bool,
        payload: impl Into<Bytes>,
        properties: mq5::PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, retain, payload.into(), properties)
            .await
            .unwrap();
    }

    /// Publishes at QoS 1 and returns the PUBACK (one QoS 1 publish in flight at a time).
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> mq5::PubAck {
        self.publish(topic, Q5::AtLeastOnce, retain, payload).await;
        self.puback().await
    }

    /// The next PUBACK received.
    pub async fn puback(&mut self) -> mq5::PubAck {
        self.take("PUBACK", |e| match e {
            rumqttc::v5::Event::Incoming(mq5::Packet::PubAck(ack)) => Some(ack.clone()),
            _ => None,
        })
        .await
    }

    /// The next PUBLISH received, or `None` after `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<mq5::Publish> {
        self.events
            .take(wait, |e| match e {
                rumqttc::v5::Event::Incoming(mq5::Packet::Publish(p)) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// The next PUBLISH received; panics if none arrives in time.
    pub async fn recv(&mut self) -> mq5::Publish {
        self.take("PUBLISH", |e| match e {
            rumqttc::v5::Event::Incoming(mq5::Packet::Publish(p)) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Every PUBLISH received before the first one on `fence` (which is consumed).
    pub async fn recv_until(&mut self, fence: &str) -> Vec<mq5::Publish> {
        let mut before = Vec::new();
        loop {
            let p = self.recv().await;
            if p.topic == fence.as_bytes() {
                return before;
            }
            before.push(p);
        }
    }

    /// Sends DISCONNECT and waits until the server closed the connection (the session is then
    /// detached on the server).
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        assert!(
            self.events.end(WAIT).await.is_some(),
            "connection still open after DISCONNECT"
        );
    }

    /// Waits for the connection to end; returns rumqttc's error (e.g. the server's DISCONNECT).
    pub async fn ended(&mut self, wait: Duration) -> Option<String> {
        self.events.end(wait).await
    }
}

/// A publish's topic as text.
pub fn topic5(p: &mq5::Publish) -> &str {
    std::str::from_utf8(&p.topic).unwrap()
}

/// A rumqttc 5.0 filter with explicit options.
pub fn filter5(
    path: &str,
    qos: Q5,
    no_local: bool,
    retain_as_published: bool,
    rh: mq5::RetainForwardRule,
) -> mq5::Filter {
    let mut f = mq5::Filter::new(path, qos);
    f.nolocal = no_local;
    f.preserve_retain = retain_as_published;
    f.retain_forward_rule = rh;
    f
}

/// A rumqttc MQTT 3.1.1 client.
pub struct V4Client {
    /// The rumqttc handle.
    pub client: rumqttc::AsyncClient,
    /// The CONNACK the server sent.
    pub connack: rumqttc::ConnAck,
    events: Events<rumqttc::Event>,
    task: JoinHandle<()>,
}

impl Drop for V4Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rumqttc 3.1.1 QoS levels.
pub type Q4 = rumqttc::QoS;

impl V4Client {
    /// Connects with a clean session and rumqttc's defaults.
    pub async fn connect(addr: SocketAddr, id: &str) -> Self {
        Self::connect_with(addr, id, |_| {}).await
    }

    /// Connects after `tweak` adjusted the options; panics if the server refuses.
    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> Self {
        match Self::try_connect_with(addr, id, tweak).await {
            Ok(c) => c,
            Err(e) => panic!("client {id} could not connect: {e}"),
        }
    }

    /// Connects after `tweak`; the error is rumqttc's (e.g. `ConnectionRefused(BadClientId)`).
    pub async fn try_connect_with(
        addr: SocketAddr,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> Result<Self, String> {
        let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        tweak(&mut options);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
        let connack = match timeout(WAIT, eventloop.poll()).await {
            Err(_) => return Err("no CONNACK in time".to_owned()),
            Ok(Err(e)) => return Err(format!("{e:?}")),
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)))) => ack,
            Ok(Ok(other)) => return Err(format!("expected CONNACK, got {other:?}")),
        };
        let (task, events) = spawn_event_loop!(eventloop);
        Ok(Self {
            client,
            connack,
            events,
            task,
        })
    }

    async fn take<T>(&mut self, what: &str, pick: impl FnMut(&rumqttc::Event) -> Option<T>) -> T {
        match self.events.take(WAIT, pick).await {
            Some(t) => t,
            None => panic!(
                "no {what} within {WAIT:?} (connection ended: {:?}; unclaimed events: {:?})",
                self.events.ended, self.events.backlog
            ),
        }
    }

    /// Subscribes to one filter and returns the SUBACK.
    pub async fn try_subscribe(&mut self, filter: &str, qos: Q4) -> rumqttc::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.take("SUBACK", |e| match e {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack)) => Some(ack.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes to one filter; panics unless granted.
    pub async fn subscribe(&mut self, filter: &str, qos: Q4) {
        let ack = self.try_subscribe(filter, qos).await;
        assert_eq!(
            ack.return_codes,
            [rumqttc::SubscribeReasonCode::Success(qos)],
            "SUBACK for {filter}"
        );
    }

    /// Publishes without waiting for anything.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: Q4,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .unwrap();
    }

    /// Publishes at QoS 1 and waits for the PUBACK (one QoS 1 publish in flight at a time).
    pub async fn publish_acked(&mut self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) {
        self.publish(topic, Q4::AtLeastOnce, retain, payload).await;
        self.take("PUBACK", |e| match e {
            rumqttc::Event::Incoming(rumqttc::Packet::PubAck(ack)) => Some(ack.clone()),
            _ => None,
        })
        .await;
    }

    /// The next PUBLISH received, or `None` after `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<rumqttc::Publish> {
        self.events
            .take(wait, |e| match e {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// The next PUBLISH received; panics if none arrives in time.
    pub async fn recv(&mut self) -> rumqttc::Publish {
        self.take("PUBLISH", |e| match e {
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Every PUBLISH received before the first one on `fence` (which is consumed).
    pub async fn recv_until(&mut self, fence: &str) -> Vec<rumqttc::Publish> {
        let mut before = Vec::new();
        loop {
            let p = self.recv().await;
            if p.topic == fence {
                return before;
            }
            before.push(p);
        }
    }

    /// Sends DISCONNECT and waits until the server closed the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        assert!(
            self.events.end(WAIT).await.is_some(),
            "connection still open after DISCONNECT"
        );
    }

    /// Waits for the connection to end; returns rumqttc's error.
    pub async fn ended(&mut self, wait: Duration) -> Option<String> {
        self.events.end(wait).await
    }
}
