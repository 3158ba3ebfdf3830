"""paho-mqtt 2.x against the broker over MQTT 5.0.

Usage: python3 paho_v5.py --port N SCENARIO. Exit status 0 when the broker behaved, 1 with a
`FAIL ...` line on stderr when it did not (see paho_peer.run).

Besides the version-independent scenarios of paho_core, the 5.0 features:

* user_properties_in_order: User Properties, duplicates included, reach live and retained
  subscribers unchanged and in order.
* content_type_and_format: Content Type and Payload Format Indicator are forwarded.
* request_response: Response Topic and Correlation Data let a responder answer a requester.
* message_expiry: an expired message is not delivered to a reconnecting session; a live one
  carries its remaining Message Expiry Interval.
* subscription_identifiers: each delivery carries the identifiers of the subscriptions it matched.
* no_local: a No Local subscription does not receive the client's own publications.
* shared_subscription: `$share/g/...` gives each message to exactly one member, spreading them.
* topic_alias: a client may publish with a Topic Alias and then an empty topic name.
* suback_reason_codes: an invalid filter fails only its own SUBACK entry (0x8F).
"""

from __future__ import annotations

import time

import paho_core
from paho_peer import (WAIT, PacketTypes, Peer, Properties, SubscribeOptions, check, mqtt,
                       publish_properties, run)

V5 = mqtt.MQTTv5
TOPIC_FILTER_INVALID = 0x8F


def peer(port: int, client_id: str) -> Peer:
    """A connected 5.0 client with a clean session."""
    p = Peer(port, V5, client_id)
    p.connect()
    return p


def subscribe_properties(subscription_id: int) -> Properties:
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = subscription_id
    return props


def user_properties_in_order(port: int) -> None:
    pairs = [("region", "eu"), ("trace", "a1"), ("region", "us"), ("empty", ""),
             ("Ünï", "çödé")]
    live = peer(port, "props-live")
    live.subscribe([("props/#", 1)])
    publisher = peer(port, "props-pub")
    for qos in (0, 1, 2):
        publisher.publish(f"props/q{qos}", b"x", qos=qos, retain=(qos == 2),
                          properties=publish_properties(UserProperty=list(pairs)))
    for m in sorted(live.expect(3), key=lambda m: m.topic):
        got = m.prop("UserProperty")
        check(got == pairs, f"{m.topic}: User Properties must be forwarded unchanged and in order "
                            f"[MQTT-3.3.2-18]; sent {pairs}, received {got}")
    late = peer(port, "props-late")
    late.subscribe([("props/q2", 1)])
    (m,) = late.expect()
    check(m.retain and m.prop("UserProperty") == pairs,
          f"the retained copy must keep its User Properties in order; received {m}")


def content_type_and_format(port: int) -> None:
    sub = peer(port, "ct-sub")
    sub.subscribe([("typed/#", 2)])
    publisher = peer(port, "ct-pub")
    publisher.publish("typed/json", b'{"t": 21.5}', qos=1, properties=publish_properties(
        ContentType="application/json; charset=utf-8", PayloadFormatIndicator=1))
    publisher.publish("typed/plain", b"\x00\x01", qos=1)
    first, second = sub.expect(2)
    check((first.prop("ContentType"), first.prop("PayloadFormatIndicator"))
          == ("application/json; charset=utf-8", 1),
          f"Content Type and Payload Format Indicator must be forwarded [MQTT-3.3.2-4, "
          f"MQTT-3.3.2-20]; received {first}")
    check(second.prop("ContentType") is None and second.prop("PayloadFormatIndicator") in (None, 0),
          f"a message sent without Content Type must not gain one; received {second}")


def request_response(port: int) -> None:
    responder = peer(port, "responder")
    responder.subscribe([("service/requests", 1)])
    requester = peer(port, "requester")
    requester.subscribe([("service/replies/requester", 1)])
    correlation = b"\x00req-42\xff"
    requester.publish("service/requests", b"ping", qos=1, properties=publish_properties(
        ResponseTopic="service/replies/requester", CorrelationData=correlation))

    (request,) = responder.expect()
    reply_to = request.prop("ResponseTopic")
    check((reply_to, request.prop("CorrelationData")) == ("service/replies/requester", correlation),
          f"Response Topic and Correlation Data must reach the responder [MQTT-3.3.2-15]; "
          f"received {request}")
    echoed = publish_properties(CorrelationData=request.prop("CorrelationData"))
    responder.publish(reply_to, b"pong", qos=1, properties=echoed)
    (reply,) = requester.expect()
    check((reply.payload, reply.prop("CorrelationData")) == (b"pong", correlation),
          f"the reply must come back with the same Correlation Data; received {reply}")


def message_expiry(port: int) -> None:
    offline = Peer(port, V5, "expiry-client")
    offline.connect(session_expiry=300)
    offline.subscribe([("expiring/#", 1)])
    offline.disconnect()
    publisher = peer(port, "expiry-pub")
    publisher.publish("expiring/short", b"gone", qos=1,
                      properties=publish_properties(MessageExpiryInterval=1))
    publisher.publish("expiring/long", b"kept", qos=1,
                      properties=publish_properties(MessageExpiryInterval=60))
    # Expiry is counted in whole seconds: real time has to pass for the short one to expire.
    time.sleep(2.1)
    back = Peer(port, V5, "expiry-client")
    present, _ = back.connect(clean_start=False, session_expiry=300)
    check(present, "the offline session was not kept (session present 0)")
    (m,) = back.expect()
    check(m.topic == "expiring/long",
          f"a message whose expiry interval passed must not be delivered [MQTT-3.3.2-5]; "
          f"first delivery was {m}")
    remaining = m.prop("MessageExpiryInterval")
    check(remaining is not None and remaining <= 58,
          f"the Message Expiry Interval must be reduced by the time the message waited "
          f"[MQTT-3.3.2-6]; 2.1s after sending 60 it was {remaining}")
    back.expect_quiet()


def subscription_identifiers(port: int) -> None:
    sub = peer(port, "sid-sub")
    sub.subscribe([("sid/+", 1)], properties=subscribe_properties(7))
    sub.subscribe([("sid/#", 1)], properties=subscribe_properties(9))
    sub.subscribe([("sentinel", 1)])
    publisher = peer(port, "sid-pub")
    for topic in ("sid/x", "sid/a/b", "sentinel"):
        publisher.publish(topic, topic, qos=1)
    ids: dict[str, set[int]] = {}
    for m in sub.expect_until("sentinel"):
        ids.setdefault(m.topic, set()).update(m.prop("SubscriptionIdentifier") or [])
    want = {"sid/x": {7, 9}, "sid/a/b": {9}}
    check(ids == want, f"each delivery must carry the identifiers of the subscriptions it matched "
                       f"[MQTT-3.3.4-3, MQTT-3.3.4-5]; received {ids}, expected {want}")


def no_local(port: int) -> None:
    chatty = peer(port, "nolocal-self")
    codes = chatty.subscribe([("chat/room", SubscribeOptions(qos=1, noLocal=True))])
    check(codes == [1], f"SUBACK for the No Local subscription: {codes}")
    other = peer(port, "nolocal-other")
    other.subscribe([("chat/room", 1)])
    chatty.publish("chat/room", b"from self", qos=1)
    (m,) = other.expect()
    check(m.payload == b"from self", f"another subscriber must still get it; received {m}")
    other.publish("chat/room", b"from other", qos=1)
    (m,) = chatty.expect()
    check(m.payload == b"from other",
          f"with No Local the publisher must not receive its own message [MQTT-3.8.3-3]; "
          f"first delivery was {m}")


def shared_subscription(port: int) -> None:
    members = [peer(port, f"shared-{n}") for n in (1, 2)]
    for m in members:
        m.subscribe([("$share/workers/jobs/+", 1), ("sentinel", 1)])
    observer = peer(port, "shared-observer")
    observer.subscribe([("jobs/+", 1)])
    publisher = peer(port, "shared-pub")
    jobs = [f"job-{n}".encode() for n in range(10)]
    for job in jobs:
        publisher.publish("jobs/new", job, qos=1)
    publisher.publish("sentinel", b"end", qos=1)

    shares = [[m.payload for m in member.expect_until("sentinel")] for member in members]
    got = sorted(shares[0] + shares[1])
    check(got == sorted(jobs), f"each message must go to exactly one member of the group "
                               f"[MQTT-4.8.2]; member 1 got {shares[0]}, member 2 got {shares[1]}")
    check(all(shares), f"messages must be spread across the group; member 1 got {len(shares[0])}, "
                       f"member 2 got {len(shares[1])}")
    seen = sorted(m.payload for m in observer.expect(10))
    check(seen == sorted(jobs), f"a non-shared subscription must still get every message; {seen}")


def topic_alias(port: int) -> None:
    sub = peer(port, "alias-sub")
    sub.subscribe([("alias/#", 1)])
    publisher = Peer(port, V5, "alias-pub")
    _, connack = publisher.connect()
    maximum = getattr(connack, "TopicAliasMaximum", 0)
    check(maximum >= 1, f"the broker advertises Topic Alias Maximum {maximum}; this scenario "
                        "needs at least 1")
    steps = [("alias/one", b"set"), ("", b"reused"), ("alias/two", b"remapped"), ("", b"reused 2")]
    for topic, payload in steps:
        reason = publisher.publish(topic, payload, qos=1,
                                   properties=publish_properties(TopicAlias=1))
        check(reason == 0, f"PUBLISH {topic!r} with Topic Alias 1 was answered {reason:#04x}")
    got = [(m.topic, m.payload) for m in sub.expect(4)]
    want = [("alias/one", b"set"), ("alias/one", b"reused"), ("alias/two", b"remapped"),
            ("alias/two", b"reused 2")]
    check(got == want, f"an empty topic with an alias must use the alias's current topic "
                       f"[MQTT-3.3.2-12]; received {got}, expected {want}")


def suback_reason_codes(port: int) -> None:
    sub = peer(port, "suback")
    codes = sub.subscribe_unchecked([("ok/a", 1), ("a/#/b", 0), ("ok/b", 2)])
    check(codes == [1, TOPIC_FILTER_INVALID, 2],
          f"SUBACK must fail only the invalid filter with 0x8F and grant the others; got "
          f"{[hex(c) for c in codes]}")
    publisher = peer(port, "suback-pub")
    publisher.publish("ok/a", b"a", qos=1)
    publisher.publish("ok/b", b"b", qos=2)
    got = sorted((m.topic, m.qos) for m in sub.expect(2, wait=WAIT))
    check(got == [("ok/a", 1), ("ok/b", 2)],
          f"the valid filters of that SUBSCRIBE must work; received {got}")


SCENARIOS = {
    **paho_core.scenarios(V5),
    "user_properties_in_order": user_properties_in_order,
    "content_type_and_format": content_type_and_format,
    "request_response": request_response,
    "message_expiry": message_expiry,
    "subscription_identifiers": subscription_identifiers,
    "no_local": no_local,
    "shared_subscription": shared_subscription,
    "topic_alias": topic_alias,
    "suback_reason_codes": suback_reason_codes,
}

if __name__ == "__main__":
    run(SCENARIOS, "MQTT 5.0")
