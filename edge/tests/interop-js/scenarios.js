'use strict';
/*
 * MQTT.js scenarios against a Stratus broker over WebSocket (ws://) or WebSocket over TLS
 * (wss://), run by edge/tests/interop_mqttjs.rs.
 *
 *   node scenarios.js --url ws://127.0.0.1:PORT/mqtt --scenario NAME [--protocol 4|5]
 *                     [--ca FILE] [--resolve IP] [--host-header NAME]
 *
 * --resolve IP makes every host name of the URL resolve to IP (the test names such as
 * acme.mqtt.test resolve nowhere), so the client connects by name: its TLS server name (SNI),
 * its certificate check and the WebSocket Host header all carry the name, as with real DNS.
 * --host-header NAME sends `Host: NAME` instead of the URL's host (plain ws:// tenant endpoint).
 *
 * Scenarios:
 *   round_trip      subscribe at QoS 2, publish at QoS 0, 1 and 2 on js/round-trip/q0..q2; each
 *                   message comes back once at the QoS it was published with.
 *   retained        a retained message on js/retained/sensor reaches a later subscriber with the
 *                   retain flag set; an empty retained payload clears it.
 *   unknown_tenant  the CONNACK refuses with "bad user name or password": 5.0 reason code 0x86,
 *                   3.1.1 return code 4.
 *   wrong_host      the client refuses the server certificate because it does not name the host.
 *
 * Every wait is bounded (WAIT_MS), and a watchdog ends the process after WATCHDOG_MS.
 * Exit status: 0 passed, 1 failed (a `FAIL ...` line on stderr says why), 2 usage.
 */

const fs = require('node:fs');
const { parseArgs } = require('node:util');
const mqtt = require('mqtt');

const WAIT_MS = 5000;
const WATCHDOG_MS = 20000;

class ScenarioFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new ScenarioFailed(message);
}

/** Resolves like `promise`, or rejects naming `what` once `ms` passed. */
function within(promise, what, ms = WAIT_MS) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ScenarioFailed(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function parse() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      scenario: { type: 'string' },
      protocol: { type: 'string', default: '5' },
      ca: { type: 'string' },
      resolve: { type: 'string' },
      'host-header': { type: 'string' },
    },
  });
  if (!values.url || !values.scenario || !['4', '5'].includes(values.protocol)) {
    console.error('usage: node scenarios.js --url URL --scenario NAME [--protocol 4|5] ' +
      '[--ca FILE] [--resolve IP] [--host-header NAME]');
    process.exit(2);
  }
  return values;
}

/** MQTT.js options shared by every connection of a scenario. */
function baseOptions(args) {
  const wsOptions = {};
  if (args['host-header']) wsOptions.headers = { Host: args['host-header'] };
  if (args.resolve) {
    const address = args.resolve;
    const family = address.includes(':') ? 6 : 4;
    wsOptions.lookup = (_hostname, options, callback) => {
      if (options && options.all) callback(null, [{ address, family }]);
      else callback(null, address, family);
    };
  }
  const options = {
    protocolVersion: Number(args.protocol),
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    keepalive: 30,
    wsOptions,
  };
  if (args.ca) {
    options.ca = fs.readFileSync(args.ca);
    options.rejectUnauthorized = true;
  }
  return options;
}

/** One MQTT.js connection that records what it received. */
class Peer {
  constructor(args, clientId) {
    this.name = clientId;
    this.messages = [];
    this.waiters = [];
    this.client = mqtt.connect(args.url, { ...baseOptions(args), clientId });
    this.client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      this.waiters.splice(0).forEach((wake) => wake());
    });
  }

  /** Resolves on CONNACK success; rejects with the client's error (refusal, TLS, socket). */
  connected() {
    const attempt = new Promise((resolve, reject) => {
      this.client.once('connect', resolve);
      this.client.once('error', reject);
      this.client.once('close', () => reject(new ScenarioFailed(`${this.name}: connection closed before CONNACK`)));
    });
    return within(attempt, `${this.name}: CONNACK`);
  }

  async subscribe(filter, qos) {
    const granted = await within(this.client.subscribeAsync(filter, { qos }), `${this.name}: SUBACK`);
    const got = granted.map((g) => g.qos);
    check(got.length === 1 && got[0] === qos, `${this.name}: SUBACK for ${filter} at QoS ${qos} granted ${JSON.stringify(got)}`);
  }

  /** Publishes; for QoS 1 and 2 resolves once the broker acknowledged (PUBACK / PUBCOMP). */
  publish(topic, payload, qos, retain = false) {
    return within(this.client.publishAsync(topic, payload, { qos, retain }), `${this.name}: publish ${topic} at QoS ${qos}`);
  }

  /** Waits until `count` messages were received and takes them. */
  async expect(count) {
    const arrived = async () => {
      while (this.messages.length < count) {
        await new Promise((wake) => this.waiters.push(wake));
      }
    };
    try {
      await within(arrived(), `${this.name}: ${count} message(s)`);
    } catch (e) {
      throw new ScenarioFailed(`${e.message}; received ${JSON.stringify(this.messages)}`);
    }
    return this.messages.splice(0, count);
  }

  end() {
    return within(this.client.endAsync(), `${this.name}: DISCONNECT`);
  }
}

async function roundTrip(args) {
  const sub = new Peer(args, 'js-sub');
  await sub.connected();
  await sub.subscribe('js/round-trip/+', 2);
  const pub = new Peer(args, 'js-pub');
  await pub.connected();
  for (const qos of [0, 1, 2]) {
    await pub.publish(`js/round-trip/q${qos}`, `published at ${qos}`, qos);
  }
  const got = await sub.expect(3);
  for (const qos of [0, 1, 2]) {
    const m = got.find((g) => g.topic === `js/round-trip/q${qos}`);
    check(m !== undefined, `no message on js/round-trip/q${qos}; received ${JSON.stringify(got)}`);
    check(m.qos === qos && m.payload === `published at ${qos}` && !m.retain,
      `js/round-trip/q${qos} came back as ${JSON.stringify(m)}`);
  }
  await Promise.all([sub.end(), pub.end()]);
}

async function retained(args) {
  const pub = new Peer(args, 'js-retain-pub');
  await pub.connected();
  await pub.publish('js/retained/sensor', '21.5', 1, true);

  const late = new Peer(args, 'js-retain-late');
  await late.connected();
  await late.subscribe('js/retained/+', 1);
  const [m] = await late.expect(1);
  check(m.topic === 'js/retained/sensor' && m.payload === '21.5' && m.retain && m.qos === 1,
    `a new subscriber must get the retained message with the retain flag; got ${JSON.stringify(m)}`);
  await late.end();

  await pub.publish('js/retained/sensor', '', 1, true);
  const after = new Peer(args, 'js-retain-after-clear');
  await after.connected();
  await after.subscribe('js/retained/+', 1);
  await pub.publish('js/retained/fence', 'end', 1);
  const [first] = await after.expect(1);
  check(first.topic === 'js/retained/fence',
    `an empty retained payload must clear the retained message; a new subscriber got ${JSON.stringify(first)}`);
  await Promise.all([after.end(), pub.end()]);
}

async function unknownTenant(args) {
  const expected = args.protocol === '5' ? 0x86 : 4;
  const peer = new Peer(args, 'js-unknown-tenant');
  let error;
  try {
    await peer.connected();
  } catch (e) {
    error = e;
  }
  check(error !== undefined, 'the broker accepted a connection to an unknown tenant');
  check(error.code === expected,
    `expected CONNACK code ${expected} (bad user name or password), got ${error.code}: ${error.message}`);
  peer.client.end(true);
}

async function wrongHost(args) {
  const peer = new Peer(args, 'js-wrong-host');
  let error;
  try {
    await peer.connected();
  } catch (e) {
    error = e;
  }
  check(error !== undefined, 'the client accepted a certificate that does not name the host');
  check(error.code === 'ERR_TLS_CERT_ALTNAME_INVALID',
    `expected the host name check to fail (ERR_TLS_CERT_ALTNAME_INVALID), got ${error.code}: ${error.message}`);
  peer.client.end(true);
}

const SCENARIOS = {
  round_trip: roundTrip,
  retained,
  unknown_tenant: unknownTenant,
  wrong_host: wrongHost,
};

async function main() {
  const args = parse();
  const scenario = SCENARIOS[args.scenario];
  if (!scenario) {
    console.error(`unknown scenario ${args.scenario}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  const label = `${args.scenario} (MQTT ${args.protocol === '5' ? '5.0' : '3.1.1'}, ${args.url})`;
  setTimeout(() => {
    console.error(`FAIL ${label}: still running after ${WATCHDOG_MS} ms`);
    process.exit(1);
  }, WATCHDOG_MS); // Not unref'd: the process ends only through an explicit exit below.
  try {
    await scenario(args);
  } catch (e) {
    const detail = e instanceof ScenarioFailed ? e.message : (e && e.stack) || String(e);
    console.error(`FAIL ${label}: ${detail}`);
    process.exit(1);
  }
  console.log(`PASS ${label}`);
  process.exit(0);
}

main();
