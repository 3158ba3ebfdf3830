"""A paho-mqtt 2.x client driven step by step, with a deadline on every wait.

Scenario scripts (paho_v311.py, paho_v5.py) build on three things from here:

* `Peer`: one MQTT connection. `connect`, `subscribe`, `publish` and `disconnect` return only once
  the broker has answered (CONNACK, SUBACK, PUBACK/PUBCOMP, socket closed) and raise
  `ScenarioFailed` if it does not within `WAIT` seconds. Received messages are queued as `Received`
  and taken with `expect` / `expect_until`.
* `check(condition, message)`: fails the scenario with a message naming what was wrong.
* `run(scenarios, protocol)`: the command line (`--port N SCENARIO`), a watchdog that ends a
  stuck process, and the exit status (0 pass, 1 scenario failed, 2 usage, 3 watchdog, 4 paho-mqtt
  2.x missing).

The broker is expected on 127.0.0.1; every test starts its own, so topics and client ids need not be
unique across scenarios.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"paho-mqtt is not installed ({error}); install it with: pip install 'paho-mqtt>=2,<3'",
          file=sys.stderr)
    sys.exit(4)

if not paho.mqtt.__version__.startswith("2."):
    print(f"paho-mqtt {paho.mqtt.__version__} found, 2.x needed: pip install 'paho-mqtt>=2,<3'",
          file=sys.stderr)
    sys.exit(4)

__all__ = ["QUIET", "WAIT", "PacketTypes", "Peer", "Properties", "Received", "ScenarioFailed",
           "SubscribeOptions", "check", "mqtt", "publish_properties", "run"]

HOST = "127.0.0.1"
# Longest wait for any single broker answer or expected message.
WAIT = 5.0
# How long "nothing more arrives" (no duplicate, no late Will) is watched for.
QUIET = 0.3
# Whole-process limit: a scenario still running after this is reported and killed.
WATCHDOG = 45.0


class ScenarioFailed(Exception):
    """The broker did not behave as the scenario requires."""


def check(condition: bool, message: str) -> None:
    """Fails the scenario with `message` unless `condition` holds."""
    if not condition:
        raise ScenarioFailed(message)


@dataclass
class Received:
    """One PUBLISH as the client saw it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties | None

    def prop(self, name: str):
        """A v5 property of the message, or None when absent."""
        return getattr(self.properties, name, None) if self.properties is not None else None

    def __str__(self) -> str:
        props = f" {self.properties}" if self.properties is not None else ""
        return f"{self.topic!r} {self.payload!r} qos={self.qos} retain={int(self.retain)}{props}"


def publish_properties(**values) -> Properties:
    """PUBLISH properties from keyword arguments: `UserProperty=[(k, v)]`, `ContentType=...`."""
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


class Peer:
    """One MQTT connection made by paho, with blocking, deadline-bound operations."""

    def __init__(self, port: int, protocol: int, client_id: str, *, clean_session: bool = True):
        self.port = port
        self.protocol = protocol
        self.client_id = client_id
        self.v5 = protocol == mqtt.MQTTv5
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if self.v5 else clean_session,
            reconnect_on_failure=False,
        )
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._connack: tuple | None = None
        self._subacks: dict[int, list] = {}
        self._suback_arrived = threading.Condition()
        self._publish_reasons: dict[int, object] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def __repr__(self) -> str:
        return f"Peer({self.client_id!r})"

    # --- callbacks (paho's network thread) ---

    def _on_connect(self, _client, _userdata, flags, reason_code, properties):
        self._connack = (flags.session_present, reason_code, properties)
        self._connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, _reason_code, _properties):
        self._disconnected.set()

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _properties):
        with self._suback_arrived:
            self._subacks[mid] = list(reason_codes)
            self._suback_arrived.notify_all()

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties):
        self._publish_reasons[mid] = reason_code

    def _on_message(self, _client, _userdata, message):
        self.messages.put(Received(message.topic, bytes(message.payload), message.qos,
                                   bool(message.retain), getattr(message, "properties", None)))

    # --- operations ---

    def will(self, topic: str, payload: bytes, qos: int = 1, properties: Properties | None = None):
        """Sets the Will for the next connect."""
        self.client.will_set(topic, payload, qos=qos, retain=False, properties=properties)

    def connect(self, *, clean_start: bool = True, session_expiry: int | None = None,
                properties: Properties | None = None) -> tuple[bool, object]:
        """Connects and waits for a successful CONNACK; returns (session_present, properties)."""
        self._connected.clear()
        self._disconnected.clear()
        try:
            if self.v5:
                props = properties or Properties(PacketTypes.CONNECT)
                if session_expiry is not None:
                    props.SessionExpiryInterval = session_expiry
                self.client.connect(HOST, self.port, keepalive=30, clean_start=clean_start,
                                    properties=props)
            else:
                self.client.connect(HOST, self.port, keepalive=30)
        except OSError as error:
            raise ScenarioFailed(f"{self}: cannot reach the broker at {HOST}:{self.port}: {error}")
        self.client.loop_start()
        if not self._connected.wait(WAIT):
            raise ScenarioFailed(f"{self}: no CONNACK within {WAIT}s")
        session_present, reason, props = self._connack
        check(not reason.is_failure, f"{self}: CONNACK refused the connection: {reason}")
        return session_present, props

    def subscribe(self, filters: list[tuple], properties: Properties | None = None) -> list[int]:
        """Sends one SUBSCRIBE with `(filter, qos or SubscribeOptions)` pairs; returns the SUBACK
        reason codes as integers (3.1.1: the granted QoS or 0x80)."""
        rc, mid = self.client.subscribe(filters, properties=properties)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self}: SUBSCRIBE not sent: {mqtt.error_string(rc)}")
        return self._wait_suback(mid)

    def subscribe_unchecked(self, filters: list[tuple]) -> list[int]:
        """Like `subscribe`, but skips paho's own filter validation, so a filter the broker must
        refuse (`a/#/b`) reaches it. Uses paho's internal sender: the public API refuses to send."""
        encoded = [(f.encode("utf-8"),
                    o if isinstance(o, SubscribeOptions) else SubscribeOptions(qos=o))
                   for f, o in filters]
        rc, mid = self.client._send_subscribe(False, encoded)  # noqa: SLF001 - see docstring
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self}: SUBSCRIBE not sent: {mqtt.error_string(rc)}")
        return self._wait_suback(mid)

    def _wait_suback(self, mid: int) -> list[int]:
        deadline = time.monotonic() + WAIT
        with self._suback_arrived:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ScenarioFailed(f"{self}: no SUBACK within {WAIT}s")
                self._suback_arrived.wait(left)
            return [int(rc.value) for rc in self._subacks.pop(mid)]

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> int:
        """Publishes and waits until the broker acknowledged it (QoS 1/2) or it was written (QoS 0).
        Returns the v5 PUBACK/PUBREC reason code (0 for success and for 3.1.1)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS,
              f"{self}: PUBLISH to {topic!r} not sent: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(WAIT)
        check(info.is_published(), f"{self}: PUBLISH to {topic!r} (QoS {qos}) not acknowledged "
                                   f"within {WAIT}s")
        reason = self._publish_reasons.pop(info.mid, None)
        return int(reason.value) if reason is not None and hasattr(reason, "value") else 0

    def expect(self, count: int = 1, wait: float = WAIT) -> list[Received]:
        """The next `count` messages, failing if they do not all arrive within `wait` seconds."""
        deadline = time.monotonic() + wait
        got: list[Received] = []
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                shown = "; ".join(str(m) for m in got) or "nothing"
                raise ScenarioFailed(f"{self}: expected {count} message(s) within {wait}s, "
                                     f"received {shown}") from None
        return got

    def expect_until(self, sentinel_topic: str, wait: float = WAIT) -> list[Received]:
        """Every message received before the first one on `sentinel_topic` (which is consumed)."""
        deadline = time.monotonic() + wait
        before: list[Received] = []
        while True:
            try:
                m = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                shown = "; ".join(str(m) for m in before) or "nothing"
                raise ScenarioFailed(f"{self}: sentinel {sentinel_topic!r} not received within "
                                     f"{wait}s; received {shown}") from None
            if m.topic == sentinel_topic:
                return before
            before.append(m)

    def expect_quiet(self, wait: float = QUIET) -> None:
        """Fails if any message arrives within `wait` seconds."""
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise ScenarioFailed(f"{self}: expected no more messages, received {m}")

    def disconnect(self) -> None:
        """Sends DISCONNECT (reason 0, no Will) and waits for the connection to close."""
        self.client.disconnect()
        if not self._disconnected.wait(WAIT):
            raise ScenarioFailed(f"{self}: connection still open {WAIT}s after DISCONNECT")

    def drop(self) -> None:
        """Closes the TCP connection without DISCONNECT, as a crashed client would."""
        sock = self.client.socket()
        check(sock is not None, f"{self}: not connected")
        sock.shutdown(socket.SHUT_RDWR)
        if not self._disconnected.wait(WAIT):
            raise ScenarioFailed(f"{self}: paho did not notice the dropped connection in {WAIT}s")


def run(scenarios: dict[str, Callable[[int], None]], protocol_name: str) -> None:
    """Parses `--port N SCENARIO`, runs it under a watchdog and exits with its status."""
    parser = argparse.ArgumentParser(description=f"paho-mqtt {protocol_name} interop scenarios")
    parser.add_argument("--port", type=int, required=True, help="broker MQTT port on 127.0.0.1")
    parser.add_argument("scenario", choices=sorted(scenarios), help="scenario to run")
    args = parser.parse_args()

    def watchdog() -> None:
        print(f"FAIL {args.scenario} ({protocol_name}): still running after {WATCHDOG}s",
              file=sys.stderr, flush=True)
        os._exit(3)

    timer = threading.Timer(WATCHDOG, watchdog)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    try:
        scenarios[args.scenario](args.port)
    except ScenarioFailed as failure:
        print(f"FAIL {args.scenario} ({protocol_name}): {failure}", file=sys.stderr, flush=True)
        os._exit(1)
    except Exception:  # noqa: BLE001 - any crash is a failure to report, not to hide
        print(f"FAIL {args.scenario} ({protocol_name}): the script crashed", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    elapsed = time.monotonic() - started
    print(f"PASS {args.scenario} ({protocol_name}) in {elapsed:.2f}s", flush=True)
    # os._exit: paho's daemon threads of clients left connected need no orderly shutdown.
    os._exit(0)
