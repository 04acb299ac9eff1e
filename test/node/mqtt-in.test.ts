/**
 * iotb-mqtt-in against a real Mosquitto (and a real influxd behind iotb-validate and iotb-influx-write):
 * a PUBACK goes to the broker only once the reading is in the spool, refused devices leave with a reason,
 * held acknowledgements are bounded, and a shared subscription splits the load without loss or duplicates.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { ackLedger } from '../../nodes/lib/ingest/ack-ledger';
import { ackFailuresTotal, acksHeld, ackTimeoutsTotal } from '../../nodes/lib/ingest/ingest-metrics';
import { rejectedTotal } from '../../nodes/lib/metrics';
import { helper, nodeModule, received } from '../support/helper';
import { connectDevice, publishReadings } from '../support/mqtt-device';
import {
  eventually,
  influxRows,
  requireBinary,
  startInfluxd,
  startMosquitto,
  tempDir,
  until,
  type Server,
} from '../support/servers';

const nodes = ['registry', 'mqtt-in', 'validate', 'influx', 'influx-write'].map(nodeModule);
const sensor = { type: 'object', properties: { ts: { type: 'number' }, v: { type: 'number' } } };

/** The current value of a counter's series with these labels (0 before its first count). */
async function counted(
  metric: { get(): Promise<MetricObjectWithValues<MetricValue<string>>> },
  labels: Record<string, string>,
): Promise<number> {
  const values = (await metric.get()).values;
  return (
    values.find((x) =>
      Object.entries(labels).every(([k, v]) => (x.labels as Record<string, unknown>)[k] === v),
    )?.value ?? 0
  );
}

/** The latest status text (its message key) a node showed; the node repeats its status every 2 s. */
function statuses(id: string): { last: string } {
  const seen = { last: '' };
  helper.getNode(id).on('call:status', (call: any) => {
    seen.last = String(call.args[0]?.text ?? '');
  });
  return seen;
}

/** Resolves once the node's subscription is granted: publications from now on reach it. */
function subscribed(id: string): Promise<true> {
  const status = statuses(id);
  return until(`${id} subscribed`, () => /\.(connected|timeouts)$/.test(status.last));
}

describe('iotb-mqtt-in (external broker, PUBACK once stored)', () => {
  const userDir = tempDir('mqtt-in');
  let mosquitto: Server;
  let influx: Server;
  const devices: MqttClient[] = [];
  before(async () => {
    // A persistent session's queue must hold every reading we publish while no subscriber acknowledges.
    mosquitto = await startMosquitto({ extraConfig: ['max_queued_messages 100000'] });
    influx = await startInfluxd({ database: 'iot' });
    helper.settings({ userDir: userDir.path });
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await mosquitto?.stop();
    await influx?.stop();
    userDir.remove();
  });
  afterEach(async () => {
    await helper.unload();
    for (const d of devices.splice(0)) await d.endAsync();
  });

  const registry = {
    id: 'reg',
    type: 'iotb-registry',
    file: join(userDir.path, 'registry.json'),
    types: [{ name: 'sensor', schema: JSON.stringify(sensor) }],
  };
  const mqttIn = (
    id: string,
    extra: Record<string, unknown>,
    wires: string[][],
  ): Record<string, unknown> => ({
    id,
    type: 'iotb-mqtt-in',
    registry: 'reg',
    url: mosquitto.url,
    clientId: `iotb-test-${id}`,
    ackTimeoutS: 60,
    wires,
    ...extra,
  });
  /** validate -> influx-write (spool under userDir/iotb-spool/w) -> influxd. */
  const storage = [
    { id: 'v', type: 'iotb-validate', schemaSource: 'type', registry: 'reg', wires: [['w'], []] },
    { id: 'cfg', type: 'iotb-influx', flavour: '1', url: '', database: 'iot', timeoutS: 2 },
    {
      id: 'w',
      type: 'iotb-influx-write',
      influx: 'cfg',
      measurement: 'telemetry',
      flushIntervalMs: 50,
      closeTimeoutS: 0.5,
      wires: [[], [], []],
    },
  ];
  const withInflux = (): Record<string, unknown>[] =>
    storage.map((n) => (n.id === 'cfg' ? { ...n, url: influx.url } : n));

  async function device(id: string): Promise<MqttClient> {
    const c = await connectDevice(mosquitto.url, { clientId: `dev-${id}` });
    devices.push(c);
    return c;
  }

  function registryOf(): any {
    return (helper.getNode('reg') as any).registry;
  }

  async function storedCount(deviceId: string): Promise<number> {
    const rows = await influxRows(
      influx.url,
      'iot',
      `SELECT count(v) FROM telemetry WHERE device = '${deviceId}'`,
    );
    return Number(rows[0]?.count ?? 0);
  }

  for (const version of [5, 4] as const)
    it(`does not acknowledge a reading the spool could not take: the broker keeps it until it is stored (MQTT ${version === 5 ? '5' : '3.1.1'})`, async () => {
      const node = `held${version}`;
      const dev1 = `${node}-1`;
      // The writer's spool directory is a file: every append fails.
      const spoolDir = join(userDir.path, 'iotb-spool', 'w');
      rmSync(spoolDir, { recursive: true, force: true });
      mkdirSync(join(userDir.path, 'iotb-spool'), { recursive: true });
      writeFileSync(spoolDir, 'not a directory');
      const flow = [
        registry,
        mqttIn(node, { protocolVersion: version }, [['v', 'seen'], []]),
        { id: 'seen', type: 'helper' },
        ...withInflux(),
      ];
      await helper.load(nodes, flow);
      registryOf().createDevice({ id: dev1, type: 'sensor' });
      const failuresBefore = await counted(ackFailuresTotal, { source: 'external-mqtt' });
      const seen = received(helper.getNode('seen')).msgs;
      await subscribed(node);
      const dev = await device(dev1);
      const t0 = Date.now() - 60_000;
      await publishReadings(dev, dev1, 20, (i) => ({ ts: t0 + i, v: i }));
      await eventually('the writer failing the readings', async () =>
        seen.length >= 20 && (await counted(ackFailuresTotal, { source: 'external-mqtt' })) > failuresBefore
          ? true
          : undefined,
      );
      // Unacknowledged, so after the node reconnects (1 s later) the broker sends them again.
      await until('the readings redelivered', () => seen.length >= 40);
      assert.equal(await storedCount(dev1), 0);
      await helper.unload();

      // Same node, same client id, a spool that works: the broker redelivers all 20.
      rmSync(spoolDir);
      await helper.load(nodes, flow);
      await eventually('all 20 readings stored', async () =>
        (await storedCount(dev1)) === 20 ? true : undefined,
      );
      // Stored means acknowledged: nothing is left for this client id in the broker's session.
      await until('held acknowledgements released', () => ackLedger.size === 0);
      await helper.unload();
      const probe = await connectDevice(mosquitto.url, {
        clientId: `iotb-test-${node}`,
        clean: false,
        protocolVersion: version,
        properties: version === 5 ? { sessionExpiryInterval: 86_400 } : undefined,
      });
      devices.push(probe);
      const first = new Promise<string>((resolve) => probe.once('message', (_t, p) => resolve(p.toString())));
      await dev.publishAsync(`devices/${dev1}/telemetry`, '"marker"', { qos: 1 });
      assert.equal(await first, '"marker"');
    });

  it('refuses publications of unknown, disabled and revoked devices with a reason and still acknowledges them', async () => {
    await helper.load(nodes, [
      registry,
      mqttIn('refuse', { ackTimeoutS: 1 }, [['ok'], ['refused']]),
      { id: 'ok', type: 'helper' },
      { id: 'refused', type: 'helper' },
    ]);
    const reg = registryOf();
    reg.createDevice({ id: 'r-ok', type: 'sensor' });
    reg.createDevice({ id: 'r-off', type: 'sensor' });
    reg.setEnabled('r-off', false);
    reg.createDevice({ id: 'r-rev', type: 'sensor' });
    reg.revokeTokens('r-rev');
    const ok = received(helper.getNode('ok')).msgs;
    const refused = received(helper.getNode('refused')).msgs;
    const unknownBefore = await counted(rejectedTotal, { stage: 'auth', code: 'UNKNOWN_DEVICE' });
    const timeoutsBefore = await counted(ackTimeoutsTotal, { source: 'external-mqtt' });
    await subscribed('refuse');
    const dev = await device('refuser');
    for (const id of ['r-ok', 'ghost', 'r-off', 'r-rev'])
      await dev.publishAsync(`devices/${id}/telemetry`, '{"v":1}', { qos: 1 });
    await until('four publications', () => ok.length + refused.length === 4);
    assert.equal(ok.length, 1);
    assert.equal(ok[0].device.id, 'r-ok');
    assert.equal(ok[0].kind, 'telemetry');
    assert.equal(ok[0].topic, 'devices/r-ok/telemetry');
    assert.equal(ok[0].payload, '{"v":1}');
    assert.equal(typeof ok[0].ackId, 'number');
    const byTopic = Object.fromEntries(refused.map((m) => [m.topic.split('/')[1], m]));
    assert.equal(byTopic.ghost.rejection.code, 'UNKNOWN_DEVICE');
    assert.equal(byTopic['r-off'].rejection.code, 'DEVICE_DISABLED');
    assert.equal(byTopic['r-rev'].rejection.code, 'DEVICE_REVOKED');
    for (const m of refused) {
      assert.equal(m.rejection.stage, 'auth');
      assert.ok(m.rejection.reason.length > 10);
      assert.equal(m.device, undefined, 'an unauthenticated publication carries no msg.device');
      assert.equal(typeof m.ackId, 'number', 'the rejection event is what acknowledges it');
    }
    assert.equal(await counted(rejectedTotal, { stage: 'auth', code: 'UNKNOWN_DEVICE' }), unknownBefore + 1);
    // Nothing here stores them: after the ack timeout the PUBACKs go out and are counted.
    await eventually('four ack timeouts', async () =>
      (await counted(ackTimeoutsTotal, { source: 'external-mqtt' })) === timeoutsBefore + 4
        ? true
        : undefined,
    );
  });

  it('stops reading from the broker at the bound of held acknowledgements and resumes as they settle', async () => {
    await helper.load(nodes, [
      registry,
      mqttIn('bound', { maxHeld: 10 }, [['ok'], []]),
      { id: 'ok', type: 'helper' },
    ]);
    registryOf().createDevice({ id: 'b-1', type: 'sensor' });
    const status = statuses('bound');
    const ok = received(helper.getNode('ok')).msgs;
    await subscribed('bound');
    const dev = await device('b-1');
    await publishReadings(dev, 'b-1', 50, (i) => ({ v: i }));
    for (let round = 1; round <= 5; round++) {
      await eventually(`round ${round} paused`, async () =>
        ok.length === 10 * round &&
        status.last.endsWith('.paused') &&
        (await counted(acksHeld, { source: 'external-mqtt' })) === 10
          ? true
          : undefined,
      );
      ackLedger.settle(
        ok.slice(-10).map((m) => m.ackId as number),
        'stored',
      );
    }
    assert.deepEqual(
      ok.map((m) => (JSON.parse(m.payload as string) as { v: number }).v),
      Array.from({ length: 50 }, (_, i) => i),
      'in the order published',
    );
    await new Promise(setImmediate); // the gauge takes the changes of a tick at its end
    assert.equal(await counted(acksHeld, { source: 'external-mqtt' }), 0);
  });

  it('acknowledges in the order the publications arrived, whatever order they are stored in', async () => {
    await helper.load(nodes, [registry, mqttIn('order', {}, [['ok'], []]), { id: 'ok', type: 'helper' }]);
    registryOf().createDevice({ id: 'o-1', type: 'sensor' });
    const ok = received(helper.getNode('ok')).msgs;
    await subscribed('order');
    const dev = await device('o-1');
    await publishReadings(dev, 'o-1', 3, (i) => ({ v: i }));
    await until('three readings', () => ok.length === 3);
    // The gauge takes the changes of a tick at its end.
    const held = async (): Promise<number> => {
      await new Promise(setImmediate);
      return counted(acksHeld, { source: 'external-mqtt' });
    };
    const [first, second, third] = ok.map((m) => m.ackId as number);
    ackLedger.settle(second, 'stored');
    assert.equal(await held(), 3, 'the second waits for the first');
    ackLedger.settle(first, 'stored');
    assert.equal(await held(), 1, 'then both go');
    ackLedger.settle(third, 'stored');
    assert.equal(await held(), 0);
  });

  it('sends micro-batches of publications bounded by count and time, each with its held acknowledgement', async () => {
    await helper.load(nodes, [
      registry,
      mqttIn('batch', { batchSize: 5, batchWaitMs: 50 }, [['ok'], []]),
      { id: 'ok', type: 'helper' },
    ]);
    registryOf().createDevice({ id: 'mb-1', type: 'sensor' });
    registryOf().createDevice({ id: 'mb-2', type: 'sensor' });
    const ok = received(helper.getNode('ok')).msgs as {
      topic: string;
      payload: string[];
      device: { id: string }[];
      ackId: number[];
    }[];
    await subscribed('batch');
    const dev = await device('mb');
    for (let i = 0; i < 12; i++)
      await dev.publishAsync(`devices/mb-${(i % 2) + 1}/telemetry`, JSON.stringify({ v: i }), { qos: 1 });
    await until('12 publications in batches', () => ok.reduce((n, m) => n + m.payload.length, 0) === 12);
    assert.deepEqual(
      ok.map((m) => m.payload.length),
      [5, 5, 2],
    );
    for (const m of ok) {
      assert.equal(m.topic, 'batch');
      assert.equal(m.device.length, m.payload.length);
      assert.equal(m.ackId.length, m.payload.length);
    }
    const all = ok.flatMap((m) => m.payload.map((p, i) => [m.device[i].id, p]));
    assert.deepEqual(
      all,
      Array.from({ length: 12 }, (_, i) => [`mb-${(i % 2) + 1}`, JSON.stringify({ v: i })]),
    );
    assert.equal(await counted(acksHeld, { source: 'external-mqtt' }), 12);
    for (const m of ok) ackLedger.settle(m.ackId, 'stored');
    await new Promise(setImmediate); // the gauge takes the changes of a tick at its end
    assert.equal(await counted(acksHeld, { source: 'external-mqtt' }), 0);
  });

  it('logs in with the username and password from its credentials', async () => {
    // A second Mosquitto that refuses anonymous clients (the later allow_anonymous line wins).
    // Readable by the user Mosquitto drops its privileges to.
    const pwDir = tempDir('mosquitto-passwd');
    chmodSync(pwDir.path, 0o755);
    const passwords = join(pwDir.path, 'mosquitto.passwd');
    execFileSync(requireBinary('mosquitto_passwd', 'mosquitto'), [
      '-b',
      '-c',
      passwords,
      'ingest',
      'ingest-secret',
    ]);
    chmodSync(passwords, 0o644);
    const locked = await startMosquitto({
      extraConfig: ['allow_anonymous false', `password_file ${passwords}`],
    });
    try {
      const flow = (id: string): Record<string, unknown>[] => [
        registry,
        { ...mqttIn(id, {}, [['ok'], []]), url: locked.url },
        { id: 'ok', type: 'helper' },
      ];
      await helper.load(nodes, flow('cred-bad'), { 'cred-bad': { username: 'ingest', password: 'wrong' } });
      const bad = statuses('cred-bad');
      await until('refused login shown', () => bad.last.endsWith('.disconnected'));
      await helper.unload();

      await helper.load(nodes, flow('cred-ok'), {
        'cred-ok': { username: 'ingest', password: 'ingest-secret' },
      });
      registryOf().createDevice({ id: 'c-1', type: 'sensor' });
      const ok = received(helper.getNode('ok')).msgs;
      await subscribed('cred-ok');
      const dev = await connectDevice(locked.url, {
        clientId: 'dev-c-1',
        username: 'ingest',
        password: 'ingest-secret',
      });
      devices.push(dev);
      await dev.publishAsync('devices/c-1/telemetry', '{"v":1}', { qos: 1 });
      await until('the reading', () => ok.length === 1);
      assert.equal(ok[0].device.id, 'c-1');
    } finally {
      await helper.unload();
      await locked.stop();
      pwDir.remove();
    }
  });

  it('splits a shared subscription between two nodes: every reading stored once, none lost', async () => {
    const group = { sharedGroup: 'iotb-test' };
    await helper.load(nodes, [
      registry,
      mqttIn('s1', group, [['v', 'seen1'], []]),
      mqttIn('s2', group, [['v', 'seen2'], []]),
      { id: 'seen1', type: 'helper' },
      { id: 'seen2', type: 'helper' },
      ...withInflux(),
    ]);
    const seen1 = received(helper.getNode('seen1')).msgs;
    const seen2 = received(helper.getNode('seen2')).msgs;
    const ids = ['s-1', 's-2', 's-3', 's-4'];
    for (const id of ids) registryOf().createDevice({ id, type: 'sensor' });
    // Both members must hold the subscription before the burst, or the broker gives it all to the first.
    await Promise.all([subscribed('s1'), subscribed('s2')]);
    const t0 = Date.now() - 60_000;
    await Promise.all(
      ids.map(async (id) => publishReadings(await device(id), id, 100, (i) => ({ ts: t0 + i, v: i }))),
    );
    for (const id of ids)
      await eventually(`100 readings of ${id} stored`, async () =>
        (await storedCount(id)) === 100 ? true : undefined,
      );
    assert.equal(seen1.length + seen2.length, 400, 'each publication reached exactly one node');
    assert.ok(seen1.length > 0 && seen2.length > 0, `split ${seen1.length}/${seen2.length}`);
    const keys = new Set([...seen1, ...seen2].map((m) => `${m.topic} ${m.payload}`));
    assert.equal(keys.size, 400);
  });

  it('splits the readings over several sessions of one node: every reading stored once, also after it had one session', async () => {
    const ids = ['m-1', 'm-2', 'm-3', 'm-4'];
    // First one session: its persistent session at the broker holds the plain subscription.
    await helper.load(nodes, [registry, mqttIn('multi', {}, [[], []])]);
    for (const id of ids) registryOf().createDevice({ id, type: 'sensor' });
    await subscribed('multi');
    await helper.unload();
    // Then three: session 0 resumes that session and must not get readings through the old subscription too.
    await helper.load(nodes, [
      registry,
      mqttIn('multi', { sessions: 3 }, [['v', 'seen'], []]),
      { id: 'seen', type: 'helper' },
      ...withInflux(),
    ]);
    const seen = received(helper.getNode('seen')).msgs;
    await subscribed('multi'); // connected: every session's subscription is granted
    const t0 = Date.now() - 60_000;
    await Promise.all(
      ids.map(async (id) => publishReadings(await device(id), id, 100, (i) => ({ ts: t0 + i, v: i }))),
    );
    for (const id of ids)
      await eventually(`100 readings of ${id} stored`, async () =>
        (await storedCount(id)) === 100 ? true : undefined,
      );
    await until('acknowledgements released', () => ackLedger.size === 0);
    assert.equal(seen.length, 400, 'each publication reached the node once');
    assert.equal(new Set(seen.map((m) => `${m.topic} ${m.payload}`)).size, 400);
  });

  it('drains and ends the sessions above a lowered count: what they held is stored, nothing more goes to them', async () => {
    const id = 'retire-1';
    await helper.load(nodes, [registry, mqttIn('retire', { sessions: 3 }, [[], []])]);
    registryOf().createDevice({ id, type: 'sensor' });
    await subscribed('retire');
    await helper.unload();
    // Nobody connected: the broker queues the readings in the three sessions of the shared subscription.
    const dev = await device(id);
    const t0 = Date.now() - 60_000;
    await publishReadings(dev, id, 60, (i) => ({ ts: t0 + i, v: i }));
    await helper.load(nodes, [
      registry,
      mqttIn('retire', { sessions: 1 }, [['v', 'seen'], []]),
      { id: 'seen', type: 'helper' },
      ...withInflux(),
    ]);
    const seen = received(helper.getNode('seen')).msgs;
    await eventually('the 60 queued readings stored', async () =>
      (await storedCount(id)) === 60 ? true : undefined,
    );
    /** Whether the broker still keeps a session under this client id (the probe leaves none behind). */
    const kept = (clientId: string): Promise<boolean> =>
      new Promise((resolve, reject) => {
        const probe = mqtt.connect(mosquitto.url, {
          clientId,
          clean: false,
          protocolVersion: 5,
          properties: { sessionExpiryInterval: 0 },
          reconnectPeriod: 0,
        });
        probe.once('connect', (connack) => {
          probe.end(true);
          resolve(connack.sessionPresent);
        });
        probe.once('error', reject);
      });
    // Ended once the status no longer mentions them (probing earlier would take a session over from the node).
    await subscribed('retire');
    for (const k of [1, 2]) assert.equal(await kept(`iotb-test-retire-s${k}`), false, `session s${k} ended`);
    // Nothing goes to the ended sessions any more: every new reading reaches the node.
    await publishReadings(dev, id, 30, (i) => ({ ts: t0 + 60 + i, v: 60 + i }));
    await eventually('all 90 readings stored', async () =>
      (await storedCount(id)) === 90 ? true : undefined,
    );
    assert.equal(new Set(seen.map((m) => m.payload as string)).size, 90);
  });
});
