"""paho-mqtt 2.x reaching the broker through a tenant endpoint: MQTT over TLS with a server name
(SNI), MQTT over WebSocket (`transport="websockets"`, path /mqtt) with or without TLS, and a
client certificate for mutual TLS. Run by edge/tests/interop_paho_tls.rs.

Usage:
  python3 paho_endpoints.py --port N [--protocol 4|5] [--transport tcp|websockets]
                            [--ca FILE [--server-name NAME] [--cert FILE --key FILE]]
                            [--host-header NAME] SCENARIO

The socket always goes to 127.0.0.1:N; with --ca the TLS layer presents --server-name (default
`localhost`) as SNI and checks the broker's certificate against that name, as it would after a DNS
lookup of the name (the test names, such as acme.mqtt.test, resolve nowhere). Over WebSocket the
Host header is --host-header, else the server name with the port, else paho's default.

Scenarios:
* round_trip: a subscriber at QoS 2 and a publisher at QoS 0, 1 and 2 on paho/round-trip/q0..q2;
  each message comes back once, at the QoS it was published with.
* unknown_tenant: the CONNACK refuses with "bad user name or password" (5.0: reason code 0x86;
  3.1.1: return code 4, which paho reports as that same reason).
* wrong_host: the TLS handshake fails because the certificate does not name the server name.
* refused_certificate: the broker refuses the client certificate: the TLS handshake fails, or
  (TLS 1.3, where the client finishes first) the connection closes without a CONNACK.

Exit status: 0 passed, 1 failed (a `FAIL ...` line on stderr), 2 usage, 3 watchdog, 4 paho-mqtt
2.x missing (from paho_peer).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable

from paho_peer import WAIT, Peer, ScenarioFailed, check, mqtt

WATCHDOG = 30.0


class ServerNameContext(ssl.SSLContext):
    """A client SSLContext that presents `server_name` as SNI and checks the certificate against
    it, whatever name the socket was opened with (paho passes the host it connected to)."""

    server_name: str = "localhost"

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):  # noqa: ARG002
        return super().wrap_socket(sock, *args, server_hostname=self.server_name, **kwargs)


@dataclass
class Endpoint:
    """How every client of a scenario reaches the broker."""

    port: int
    protocol: int
    transport: str
    ca: str | None
    server_name: str
    cert: str | None
    key: str | None
    host_header: str | None

    def peer(self, client_id: str) -> Peer:
        """A Peer (see paho_peer) configured for this endpoint."""
        peer = Peer(self.port, self.protocol, client_id)
        client = peer.client
        client.transport = self.transport
        if self.transport == "websockets":
            host = self.host_header
            if host is None and self.ca:
                host = f"{self.server_name}:{self.port}"
            client.ws_set_options(path="/mqtt", headers={"Host": host} if host else None)
        if self.ca:
            context = ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
            context.server_name = self.server_name
            context.load_verify_locations(self.ca)
            if self.cert:
                context.load_cert_chain(self.cert, self.key)
            client.tls_set_context(context)
            client.tls_insecure_set(False)
        return peer

    @property
    def label(self) -> str:
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts", ("websockets", False): "ws",
                  ("websockets", True): "wss"}[(self.transport, bool(self.ca))]
        version = "5.0" if self.protocol == mqtt.MQTTv5 else "3.1.1"
        name = f" {self.server_name}" if self.ca else ""
        return f"MQTT {version} over {scheme}{name}"


def attempt_connect(peer: Peer) -> tuple[Exception | None, object | None]:
    """Starts a connection that may be refused. Returns (exception raised by connect, CONNACK
    reason), the reason being None when no CONNACK arrived before the connection closed."""
    try:
        if peer.v5:
            peer.client.connect("127.0.0.1", peer.port, keepalive=30, clean_start=True)
        else:
            peer.client.connect("127.0.0.1", peer.port, keepalive=30)
    except (OSError, ssl.CertificateError) as error:
        return error, None
    peer.client.loop_start()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if peer._connected.is_set():  # noqa: SLF001 - Peer's own state, set by its callback
            return None, peer._connack[1]  # noqa: SLF001
        if peer._disconnected.is_set():  # noqa: SLF001
            return None, None
        time.sleep(0.01)
    raise ScenarioFailed(f"{peer}: neither a CONNACK nor a closed connection within {WAIT}s")


def round_trip(endpoint: Endpoint) -> None:
    sub = endpoint.peer("paho-sub")
    sub.connect()
    codes = sub.subscribe([("paho/round-trip/+", 2)])
    check(codes == [2], f"SUBACK at QoS 2 granted {codes}")
    pub = endpoint.peer("paho-pub")
    pub.connect()
    for qos in (0, 1, 2):
        pub.publish(f"paho/round-trip/q{qos}", f"published at {qos}", qos=qos)
    got = {m.topic: (m.payload.decode(), m.qos, m.retain) for m in sub.expect(3)}
    want = {f"paho/round-trip/q{q}": (f"published at {q}", q, False) for q in (0, 1, 2)}
    check(got == want, f"received {got}, expected {want}")
    sub.expect_quiet()
    sub.disconnect()
    pub.disconnect()


def unknown_tenant(endpoint: Endpoint) -> None:
    peer = endpoint.peer("paho-unknown-tenant")
    error, reason = attempt_connect(peer)
    check(error is None, f"the connection failed before MQTT: {error!r}")
    check(reason is not None, "the connection closed without a CONNACK")
    check(reason.is_failure, "the broker accepted a connection to an unknown tenant")
    # 3.1.1 return code 4 is the only one paho reports as "Bad user name or password".
    check(reason.getName() == "Bad user name or password" and reason.value == 0x86,
          f"expected CONNACK 'bad user name or password' (0x86 / 4), got {reason.value:#x} "
          f"{reason.getName()!r}")
    peer.client.loop_stop()


def wrong_host(endpoint: Endpoint) -> None:
    peer = endpoint.peer("paho-wrong-host")
    error, reason = attempt_connect(peer)
    check(error is not None, f"the client accepted the certificate; CONNACK {reason}")
    check(isinstance(error, ssl.SSLCertVerificationError)
          and "hostname mismatch" in str(error).lower(),
          f"expected a host name mismatch in the certificate check, got {error!r}")


def refused_certificate(endpoint: Endpoint) -> None:
    peer = endpoint.peer("paho-refused-certificate")
    error, reason = attempt_connect(peer)
    if error is not None:
        check(isinstance(error, (ssl.SSLError, ConnectionError)),
              f"expected the TLS handshake to fail, got {error!r}")
        return
    check(reason is None, f"the broker answered with a CONNACK ({reason}) instead of refusing "
                          f"the client certificate")
    peer.client.loop_stop()


SCENARIOS: dict[str, Callable[[Endpoint], None]] = {
    "round_trip": round_trip,
    "unknown_tenant": unknown_tenant,
    "wrong_host": wrong_host,
    "refused_certificate": refused_certificate,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="paho-mqtt tenant endpoint scenarios")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=["4", "5"], default="5")
    parser.add_argument("--transport", choices=["tcp", "websockets"], default="tcp")
    parser.add_argument("--ca", help="CA file to trust; turns TLS on")
    parser.add_argument("--server-name", default="localhost", help="SNI and name to verify")
    parser.add_argument("--cert", help="client certificate (PEM)")
    parser.add_argument("--key", help="client certificate key (PEM)")
    parser.add_argument("--host-header", help="WebSocket Host header")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key) or (args.cert and not args.ca):
        parser.error("--cert and --key go together, and need --ca")
    endpoint = Endpoint(args.port, mqtt.MQTTv5 if args.protocol == "5" else mqtt.MQTTv311,
                        args.transport, args.ca, args.server_name, args.cert, args.key,
                        args.host_header)
    label = f"{args.scenario} ({endpoint.label})"

    def watchdog() -> None:
        print(f"FAIL {label}: still running after {WATCHDOG}s", file=sys.stderr, flush=True)
        os._exit(3)

    timer = threading.Timer(WATCHDOG, watchdog)
    timer.daemon = True
    timer.start()
    try:
        SCENARIOS[args.scenario](endpoint)
    except ScenarioFailed as failure:
        print(f"FAIL {label}: {failure}", file=sys.stderr, flush=True)
        os._exit(1)
    except Exception:  # noqa: BLE001 - any crash is a failure to report, not to hide
        print(f"FAIL {label}: the script crashed", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    print(f"PASS {label}", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
