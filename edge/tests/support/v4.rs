//! An MQTT 3.1.1 client (rumqttc) connected to a [`TestServer`](super::TestServer): its event
//! loop runs in a task until the first connection error (no automatic reconnect), and the test
//! reads its events with deadlines.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnAck, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing,
    Packet, Publish, QoS,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// How long helpers wait for an expected event.
pub const WAIT: Duration = Duration::from_secs(5);

/// Options for `client_id` at `addr`: keep-alive 30 s, clean session unless changed.
pub fn options(addr: SocketAddr, client_id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
    o
}

/// Options with Clean Session 0 (a persistent session).
pub fn persistent(addr: SocketAddr, client_id: &str) -> MqttOptions {
    let mut o = options(addr, client_id);
    o.set_clean_session(false);
    o
}

/// Options with a will.
pub fn with_will(
    mut o: MqttOptions,
    topic: &str,
    payload: &str,
    qos: QoS,
    retain: bool,
) -> MqttOptions {
    o.set_last_will(LastWill::new(topic, payload, qos, retain));
    o
}

/// The payload of a received PUBLISH as text.
pub fn text(p: &Publish) -> &str {
    std::str::from_utf8(&p.payload).unwrap()
}

/// A connected 3.1.1 client.
pub struct Conn {
    /// The request handle.
    pub client: AsyncClient,
    /// The CONNACK it received.
    pub connack: ConnAck,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    publishes: VecDeque<Publish>,
    error: Option<ConnectionError>,
    task: JoinHandle<()>,
}

impl Conn {
    /// Connects, panicking unless the CONNACK accepts.
    pub async fn connect(options: MqttOptions) -> Self {
        match Self::try_connect(options).await {
            Ok(c) => c,
            Err(e) => panic!("3.1.1 connect failed: {e:?}"),
        }
    }

    /// Connects; the error is what the event loop reported instead of a CONNACK.
    pub async fn try_connect(options: MqttOptions) -> Result<Self, ConnectionError> {
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let connack = match timeout(WAIT, eventloop.poll()).await {
            Err(_) => panic!("no CONNACK within {WAIT:?}"),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => ack,
            Ok(Ok(other)) => panic!("expected CONNACK, got {other:?}"),
        };
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        Ok(Self {
            client,
            connack,
            events,
            publishes: VecDeque::new(),
            error: None,
            task,
        })
    }

    /// The CONNACK's Session Present flag.
    pub fn session_present(&self) -> bool {
        self.connack.session_present
    }

    /// The next event within `wait`, or `None` (timeout, or the connection ended: see `error`).
    async fn next_event(&mut self, wait: Duration) -> Option<Event> {
        if self.error.is_some() {
            return None;
        }
        match timeout(wait, self.events.recv()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(Some(Err(e))) => {
                self.error = Some(e);
                None
            }
            Ok(None) | Err(_) => None,
        }
    }

    /// Waits for an event `want` accepts, keeping PUBLISHes seen meanwhile for `next_publish`.
    async fn wait_for(&mut self, what: &str, mut want: impl FnMut(&Event) -> bool) -> Event {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(e) if want(&e) => return e,
                Some(Event::Incoming(Packet::Publish(p))) => self.publishes.push_back(p),
                Some(_) => {}
                None => panic!(
                    "no {what} within {WAIT:?}; connection error: {:?}",
                    self.error
                ),
            }
        }
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        match self
            .wait_for("SUBACK", |e| {
                matches!(e, Event::Incoming(Packet::SubAck(_)))
            })
            .await
        {
            Event::Incoming(Packet::SubAck(ack)) => ack.return_codes,
            _ => unreachable!(),
        }
    }

    /// Publishes and waits until the exchange is complete: PUBACK (QoS 1), PUBCOMP (QoS 2), or
    /// the PUBLISH written (QoS 0).
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .unwrap();
        match qos {
            QoS::AtMostOnce => {
                self.wait_for("outgoing PUBLISH", |e| {
                    matches!(e, Event::Outgoing(Outgoing::Publish(_)))
                })
                .await
            }
            QoS::AtLeastOnce => {
                self.wait_for("PUBACK", |e| {
                    matches!(e, Event::Incoming(Packet::PubAck(_)))
                })
                .await
            }
            QoS::ExactlyOnce => {
                self.wait_for("PUBCOMP", |e| {
                    matches!(e, Event::Incoming(Packet::PubComp(_)))
                })
                .await
            }
        };
    }

    /// Publishes `count` QoS 1 messages `0`, `1`, ... to `topic` and waits for every PUBACK.
    pub async fn publish_numbered(&mut self, topic: &str, count: usize) {
        for i in 0..count {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap();
        }
        for _ in 0..count {
            self.wait_for("PUBACK", |e| {
                matches!(e, Event::Incoming(Packet::PubAck(_)))
            })
            .await;
        }
    }

    /// The next PUBLISH received within `wait`, if any.
    pub async fn next_publish(&mut self, wait: Duration) -> Option<Publish> {
        if let Some(p) = self.publishes.pop_front() {
            return Some(p);
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await? {
                Event::Incoming(Packet::Publish(p)) => return Some(p),
                _ => continue,
            }
        }
    }

    /// The next PUBLISH, panicking if none arrives within [`WAIT`].
    pub async fn expect_publish(&mut self) -> Publish {
        match self.next_publish(WAIT).await {
            Some(p) => p,
            None => panic!(
                "no PUBLISH within {WAIT:?}; connection error: {:?}",
                self.error
            ),
        }
    }

    /// Waits until the connection ends and returns why; PUBLISHes before that stay readable.
    pub async fn closed(&mut self, wait: Duration) -> &ConnectionError {
        let deadline = Instant::now() + wait;
        while self.error.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(Event::Incoming(Packet::Publish(p))) => self.publishes.push_back(p),
                Some(_) => {}
                None if self.error.is_none() => panic!("connection still open after {wait:?}"),
                None => {}
            }
        }
        self.error.as_ref().unwrap()
    }

    /// Sends DISCONNECT and waits until the server has closed the connection (by then it has
    /// detached the session).
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        self.closed(WAIT).await;
    }

    /// Drops the TCP connection without DISCONNECT.
    pub async fn drop_connection(mut self) {
        self.task.abort();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let end = event.is_err();
        if tx.send(event).is_err() || end {
            return;
        }
    }
}
