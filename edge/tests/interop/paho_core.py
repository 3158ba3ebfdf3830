"""Scenarios that hold for MQTT 3.1.1 and 5.0 alike, written once against paho-mqtt 2.x.

`scenarios(protocol)` returns them as `name -> function(port)` for paho_v311.py and paho_v5.py:

* connect_disconnect: CONNACK success, session present 0 for a new clean session, a clean
  DISCONNECT, and an empty client id accepted for a clean session.
* qos_round_trip: every publish QoS x subscription QoS pair; the delivered QoS is the minimum.
* retained_set_clear: a retained message reaches later subscribers with RETAIN set, live
  subscribers without it; an empty retained payload clears it.
* will_on_abnormal_close / no_will_on_clean_disconnect: the Will is published when the TCP
  connection drops without DISCONNECT, and discarded on a clean DISCONNECT.
* persistent_session: QoS 1 messages published while a persistent session is offline arrive, in
  order, when it reconnects with session present 1.
* wildcards: `+` matches one level, `#` any number including the parent level itself.
* sys_version: `$SYS/broker/version` is readable, and `#` does not match `$SYS` topics
  (needs a broker started with `$SYS` enabled).
"""

from __future__ import annotations

import time
from typing import Callable

from paho_peer import WAIT, Peer, check


def scenarios(protocol: int) -> dict[str, Callable[[int], None]]:
    """The shared scenarios bound to `protocol` (mqtt.MQTTv311 or mqtt.MQTTv5)."""

    def bind(scenario):
        return lambda port: scenario(port, protocol)

    return {
        "connect_disconnect": bind(connect_disconnect),
        "qos_round_trip": bind(qos_round_trip),
        "retained_set_clear": bind(retained_set_clear),
        "will_on_abnormal_close": bind(will_on_abnormal_close),
        "no_will_on_clean_disconnect": bind(no_will_on_clean_disconnect),
        "persistent_session": bind(persistent_session),
        "wildcards": bind(wildcards),
        "sys_version": bind(sys_version),
    }


def connect_persistent(peer: Peer, *, resume: bool) -> bool:
    """Connects keeping the session after disconnect (3.1.1: clean session 0; 5.0: a session
    expiry interval, clean start only the first time). Returns session present."""
    if peer.v5:
        present, _ = peer.connect(clean_start=not resume, session_expiry=300)
    else:
        present, _ = peer.connect()
    return present


def connect_disconnect(port: int, protocol: int) -> None:
    named = Peer(port, protocol, "interop-named")
    present, props = named.connect()
    check(present is False, "a new clean session was reported as present")
    named.disconnect()

    anonymous = Peer(port, protocol, "")
    _, props = anonymous.connect()
    if anonymous.v5:
        assigned = getattr(props, "AssignedClientIdentifier", None)
        check(bool(assigned), f"5.0 CONNACK for an empty client id lacks an Assigned Client "
                              f"Identifier [MQTT-3.2.2-16]; properties: {props}")
    anonymous.publish("hello/anonymous", b"hi", qos=1)
    anonymous.disconnect()


def qos_round_trip(port: int, protocol: int) -> None:
    subscribers = {}
    for sub_qos in (0, 1, 2):
        peer = Peer(port, protocol, f"sub-qos{sub_qos}")
        peer.connect()
        codes = peer.subscribe([("qos/matrix", sub_qos)])
        check(codes == [sub_qos], f"SUBACK for QoS {sub_qos} granted {codes}")
        subscribers[sub_qos] = peer
    publisher = Peer(port, protocol, "pub-qos")
    publisher.connect()
    for pub_qos in (0, 1, 2):
        publisher.publish("qos/matrix", f"published at {pub_qos}", qos=pub_qos)
    for sub_qos, peer in subscribers.items():
        got = {m.payload.decode(): m.qos for m in peer.expect(3)}
        want = {f"published at {p}": min(p, sub_qos) for p in (0, 1, 2)}
        check(got == want, f"subscription QoS {sub_qos}: delivered QoS by payload {got}, "
                           f"expected {want} (the minimum of publish and subscription QoS)")
        peer.expect_quiet()


def retained_set_clear(port: int, protocol: int) -> None:
    live = Peer(port, protocol, "retain-live")
    live.connect()
    live.subscribe([("retained/#", 1)])
    publisher = Peer(port, protocol, "retain-pub")
    publisher.connect()
    publisher.publish("retained/sensor", b"21.5", qos=1, retain=True)
    (m,) = live.expect()
    check(m.payload == b"21.5" and not m.retain,
          f"a subscriber that was already subscribed must get RETAIN 0 [MQTT-3.3.1-9]; got {m}")

    late = Peer(port, protocol, "retain-late")
    late.connect()
    late.subscribe([("retained/+", 1)])
    (m,) = late.expect()
    check((m.topic, m.payload, m.retain, m.qos) == ("retained/sensor", b"21.5", True, 1),
          f"a new subscription must receive the retained message with RETAIN 1; got {m}")
    late.disconnect()

    publisher.publish("retained/sensor", b"", qos=1, retain=True)
    cleared = Peer(port, protocol, "retain-after-clear")
    cleared.connect()
    cleared.subscribe([("retained/+", 1)])
    publisher.publish("retained/sentinel", b"end", qos=1)
    before = cleared.expect_until("retained/sentinel")
    check(before == [], "an empty retained payload must clear the retained message "
                        f"[MQTT-3.3.1-10]; a new subscriber still got {[str(m) for m in before]}")


def will_on_abnormal_close(port: int, protocol: int) -> None:
    watcher = Peer(port, protocol, "will-watcher")
    watcher.connect()
    watcher.subscribe([("wills/#", 1)])
    dying = Peer(port, protocol, "will-dying")
    dying.will("wills/dying", b"connection lost", qos=1)
    dying.connect()
    dying.drop()
    (m,) = watcher.expect()
    check((m.topic, m.payload) == ("wills/dying", b"connection lost"),
          f"expected the Will on wills/dying after the connection dropped; got {m}")
    watcher.expect_quiet()


def no_will_on_clean_disconnect(port: int, protocol: int) -> None:
    watcher = Peer(port, protocol, "will-watcher")
    watcher.connect()
    watcher.subscribe([("wills/#", 1)])
    leaving = Peer(port, protocol, "will-leaving")
    leaving.will("wills/leaving", b"should not be sent", qos=1)
    leaving.connect()
    leaving.disconnect()
    watcher.publish("wills/sentinel", b"end", qos=1)
    before = watcher.expect_until("wills/sentinel")
    check(before == [], "a Will must be discarded on a clean DISCONNECT [MQTT-3.1.2-10]; got "
                        f"{[str(m) for m in before]}")
    # A Will routed after the sentinel would still show up here.
    watcher.expect_quiet()


def persistent_session(port: int, protocol: int) -> None:
    client_id = "persistent-client"
    first = Peer(port, protocol, client_id, clean_session=False)
    connect_persistent(first, resume=False)
    first.subscribe([("inbox/#", 1)])
    first.disconnect()

    publisher = Peer(port, protocol, "inbox-pub")
    publisher.connect()
    for n in range(3):
        publisher.publish(f"inbox/{n}", f"queued {n}", qos=1)

    second = Peer(port, protocol, client_id, clean_session=False)
    present = connect_persistent(second, resume=True)
    check(present is True, "reconnecting to a persistent session must report session present 1 "
                           "[MQTT-3.2.2-2]")
    got = second.expect(3)
    check([(m.topic, m.payload, m.qos) for m in got]
          == [(f"inbox/{n}", f"queued {n}".encode(), 1) for n in range(3)],
          f"queued QoS 1 messages must arrive in publish order; got {[str(m) for m in got]}")
    second.expect_quiet()


def wildcards(port: int, protocol: int) -> None:
    single = Peer(port, protocol, "wild-single")
    single.connect()
    single.subscribe([("home/+/temp", 1), ("sentinel", 1)])
    multi = Peer(port, protocol, "wild-multi")
    multi.connect()
    multi.subscribe([("home/#", 1), ("sentinel", 1)])

    publisher = Peer(port, protocol, "wild-pub")
    publisher.connect()
    topics = ["home/kitchen/temp", "home/kitchen/humidity", "home", "home/a/b/temp", "homes/x/temp",
              "home/hall/temp"]
    for topic in topics:
        publisher.publish(topic, topic, qos=1)
    publisher.publish("sentinel", b"end", qos=1)

    got = [m.topic for m in single.expect_until("sentinel")]
    check(got == ["home/kitchen/temp", "home/hall/temp"],
          f"'home/+/temp' must match exactly one level at '+'; received {got}")
    got = [m.topic for m in multi.expect_until("sentinel")]
    want = ["home/kitchen/temp", "home/kitchen/humidity", "home", "home/a/b/temp", "home/hall/temp"]
    check(got == want, f"'home/#' must match every level below home and home itself "
                       f"[MQTT-4.7.1-2]; received {got}, expected {want}")


def sys_version(port: int, protocol: int) -> None:
    reader = Peer(port, protocol, "sys-reader")
    reader.connect()
    reader.subscribe([("$SYS/broker/version", 0)])
    (m,) = reader.expect()
    check(m.topic == "$SYS/broker/version" and m.payload.strip() != b"",
          f"expected a non-empty $SYS/broker/version; got {m}")

    everything = Peer(port, protocol, "sys-hash")
    everything.connect()
    everything.subscribe([("#", 0)])
    # Wait for a fresh $SYS round (not the retained copy): it was routed after `#` was in place.
    reader.subscribe([("$SYS/broker/uptime", 0)])
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        check(left > 0, f"no live (RETAIN 0) $SYS/broker/uptime update within {WAIT}s")
        (m,) = reader.expect(1, wait=left)
        if m.topic == "$SYS/broker/uptime" and not m.retain:
            break
    publisher = Peer(port, protocol, "sys-pub")
    publisher.connect()
    publisher.publish("after-sys", b"end")
    # Retained messages of ordinary topics may arrive too; only `$` topics are a leak.
    leaked = [m.topic for m in everything.expect_until("after-sys") if m.topic.startswith("$")]
    check(leaked == [], f"'#' must not match topics starting with '$' [MQTT-4.7.2-1]; got {leaked}")

