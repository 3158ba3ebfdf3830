"""paho-mqtt 2.x against the broker over MQTT 3.1.1.

Usage: python3 paho_v311.py --port N SCENARIO. Exit status 0 when the broker behaved, 1 with a
`FAIL ...` line on stderr when it did not (see paho_peer.run). The scenarios are the
version-independent ones of paho_core.
"""

import paho_core
from paho_peer import mqtt, run

if __name__ == "__main__":
    run(paho_core.scenarios(mqtt.MQTTv311), "MQTT 3.1.1")
