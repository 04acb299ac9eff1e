import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { DeviceBroker } from '../../nodes/lib/broker/broker';
import { ackLedger } from '../../nodes/lib/ingest/ack-ledger';
import { metricsRegistry } from '../../nodes/lib/metrics';
import type { Registry } from '../../nodes/lib/registry/registry';
import type { MqttClient } from 'mqtt';
import { helper, nodeModule } from '../support/helper';
import { closed, connectDevice, refusalCode } from '../support/mqtt-device';
import { freePort, tempDir, until } from '../support/servers';

const nodes = [
  nodeModule('registry'),
  nodeModule('broker'),
  nodeModule('device-in'),
  nodeModule('influx'),
  nodeModule('validate'),
  nodeModule('influx-write'),
];
const SECRET = 'node-test-registry-secret-0123456789abcdef';

/** Resolves with the next message on `node` that passes `filter`. */
function next(node: any, filter: (m: any) => boolean = () => true): Promise<any> {
  return new Promise((resolve) => {
    const on = (m: any): void => {
      if (!filter(m)) return;
      node.off('input', on);
      resolve(m);
    };
    node.on('input', on);
  });
}

function whenListening(broker: DeviceBroker): Promise<void> {
  if (broker.state === 'listening') return Promise.resolve();
  return new Promise((resolve, reject) =>
    broker.on('state', (s: string) =>
      s === 'listening' ? resolve() : s === 'failed' ? reject(new Error('broker failed')) : undefined,
    ),
  );
}

describe('iotb-broker and iotb-device-in nodes', () => {
  let dir: ReturnType<typeof tempDir>;
  let port: number;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = tempDir('broker-node');
    helper.settings({ userDir: dir.path });
    port = await freePort();
  });
  afterEach(async () => {
    await helper.unload();
    dir.remove();
  });

  const flow = (extra: Record<string, unknown> = {}) => [
    { id: 'reg', type: 'iotb-registry', file: 'devices.json', types: [{ name: 'thermo' }] },
    { id: 'brk', type: 'iotb-broker', registry: 'reg', host: '127.0.0.1', port: 0, topicPrefix: 'devices' },
    {
      id: 'in',
      type: 'iotb-device-in',
      broker: 'brk',
      telemetry: true,
      status: false,
      ack: true,
      wires: [['msgs'], ['events']],
      ...extra,
    },
    { id: 'msgs', type: 'helper' },
    { id: 'events', type: 'helper' },
  ];
  const load = async (
    extra: Record<string, unknown> = {},
    brokerExtra: Record<string, unknown> = {},
    more: Record<string, unknown>[] = [],
  ): Promise<{ registry: Registry; broker: DeviceBroker }> => {
    const f = [...flow(extra), ...more];
    Object.assign(f[1], { port }, brokerExtra);
    await helper.load(nodes, f, { reg: { secret: SECRET } });
    const registry = helper.getNode('reg').registry as Registry;
    const broker = helper.getNode('brk').broker as DeviceBroker;
    await whenListening(broker);
    return { registry, broker };
  };

  it('outputs device telemetry with msg.device, drops unselected kinds, and reports connection and security events', async () => {
    const { registry } = await load();
    const { token } = registry.createDevice({ id: 'dev-1', type: 'thermo', name: 'Boiler' });
    const url = `mqtt://127.0.0.1:${port}`;
    const connected = next(helper.getNode('events'), (m) => m.topic === 'connection');
    const c = await connectDevice(url, { clientId: 'dev-1', username: 'dev-1', password: token });
    const ev = await connected;
    assert.equal(ev.payload.event, 'connected');
    assert.equal(ev.device.id, 'dev-1');

    const msgs: any[] = [];
    helper.getNode('msgs').on('input', (m: any) => msgs.push(m));
    const telemetry = next(helper.getNode('msgs'), (m) => m.kind === 'telemetry');
    await c.publishAsync('devices/dev-1/status', '{"fw":"2"}', { qos: 1 });
    const puback = c.publishAsync('devices/dev-1/telemetry', '{"t":20}', { qos: 1 });
    const m = await telemetry;
    // Nothing stores it here: settle its held ack as a writer would, and the PUBACK follows.
    assert.equal(typeof m.ackId, 'number');
    ackLedger.settle(m.ackId, 'stored');
    await puback;
    assert.equal(m.topic, 'devices/dev-1/telemetry');
    assert.equal(m.payload, '{"t":20}');
    assert.deepEqual(
      { id: m.device.id, type: m.device.type, name: m.device.name },
      { id: 'dev-1', type: 'thermo', name: 'Boiler' },
    );
    assert.deepEqual(
      msgs.map((x) => String(x.kind)),
      ['telemetry'],
      'status is not selected',
    );

    const failure = next(
      helper.getNode('events'),
      (x) => x.topic === 'security' && x.payload.event === 'auth_failure',
    );
    assert.equal(
      await refusalCode(url, { clientId: 'dev-1', username: 'dev-1', password: 'iotbd_wrong' }),
      4,
    );
    const f = await failure;
    assert.equal(f.payload.reason, 'bad_token');
    assert.equal(f.payload.deviceId, 'dev-1');
    assert.equal(f.device, undefined);
    assert.equal(JSON.stringify(f).includes('iotbd_wrong'), false);

    const revoked = next(
      helper.getNode('events'),
      (x) => x.topic === 'security' && x.payload.event === 'revoked',
    );
    const disconnected = next(
      helper.getNode('events'),
      (x) => x.topic === 'connection' && x.payload.event === 'disconnected',
    );
    registry.revokeTokens('dev-1');
    await revoked;
    await disconnected;
    c.end(true);
  });

  it('releases its port on redeploy: the next deploy listens on the same port and devices reconnect', async () => {
    let { registry } = await load();
    const { token } = registry.createDevice({ id: 'dev-2', type: 'thermo' });
    const url = `mqtt://127.0.0.1:${port}`;
    const c = await connectDevice(url, { clientId: 'dev-2', username: 'dev-2', password: token });
    const gone = new Promise((resolve) => c.once('close', () => resolve(undefined)));
    await helper.unload();
    await gone;
    c.end(true);
    ({ registry } = await load());
    const again = await connectDevice(url, { clientId: 'dev-2', username: 'dev-2', password: token });
    await again.endAsync();
  });

  it('passes Buffer payloads when asked to', async () => {
    const { registry } = await load({ payloadFormat: 'buffer' });
    const { token } = registry.createDevice({ id: 'dev-3', type: 'thermo' });
    const c = await connectDevice(`mqtt://127.0.0.1:${port}`, {
      clientId: 'dev-3',
      username: 'dev-3',
      password: token,
    });
    const got = next(helper.getNode('msgs'));
    await c.publishAsync('devices/dev-3/commands/ack', '{"id":"c1","status":"succeeded"}', { qos: 1 });
    const m = await got;
    assert.ok(Buffer.isBuffer(m.payload));
    assert.equal(m.kind, 'commands/ack');
    await c.endAsync();
  });

  describe('acknowledge after durable', () => {
    const device = async (registry: Registry, id: string) => {
      const { token } = registry.createDevice({ id, type: 'thermo' });
      return connectDevice(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password: token });
    };
    /** Resolves with true once the publish is PUBACKed (never settles when the connection closes first). */
    const track = (p: Promise<unknown>): { acked: boolean; done: Promise<unknown> } => {
      const t: { acked: boolean; done: Promise<unknown> } = { acked: false, done: Promise.resolve() };
      t.done = p.then(() => (t.acked = true));
      t.done.catch(() => undefined);
      return t;
    };
    const PROBE = '{"id":"probe","status":"succeeded"}';
    /**
     * A later QoS 1 publication that is never held (a command ack) is PUBACKed at once; aedes answers one client's
     * packets in order, so once its PUBACK is here an unheld PUBACK of an earlier publication would be here too.
     */
    const probe = (c: MqttClient, id: string): Promise<unknown> =>
      c.publishAsync(`devices/${id}/commands/ack`, PROBE, { qos: 1 });
    const metric = async (name: string): Promise<number> => {
      const m = await metricsRegistry.getSingleMetric(name)?.get();
      return m?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
    };

    it('PUBACKs a QoS 1 reading only when it is stored, once, and passes QoS 0 and command acks unheld', async () => {
      const { registry } = await load({ status: true });
      const c = await device(registry, 'ack-1');
      const got: any[] = [];
      helper.getNode('msgs').on('input', (m: any) => {
        if (m.payload !== PROBE) got.push(m);
      });
      const pub = track(c.publishAsync('devices/ack-1/telemetry', '{"t":1}', { qos: 1 }));
      await until('the reading', () => got.length === 1);
      const m = got[0];
      assert.equal(typeof m.ackId, 'number');
      await probe(c, 'ack-1');
      assert.equal(pub.acked, false, 'no PUBACK before the reading is stored');
      ackLedger.settle(m.ackId, 'stored');
      await pub.done;
      // QoS 2: the PUBREC (and so the PUBCOMP) waits the same way.
      const pub2 = track(c.publishAsync('devices/ack-1/telemetry', '{"t":0}', { qos: 2 }));
      await until('the QoS 2 reading', () => got.length === 2);
      await probe(c, 'ack-1');
      assert.equal(pub2.acked, false);
      ackLedger.settle(got[1].ackId, 'stored');
      await pub2.done;
      got.splice(1, 1);
      await c.publishAsync('devices/ack-1/telemetry', '{"t":2}', { qos: 0 });
      await c.publishAsync('devices/ack-1/commands/ack', '{"id":"x","status":"succeeded"}', { qos: 1 });
      await until('three messages', () => got.length === 3);
      assert.deepEqual(
        got.map((x): unknown[] => [x.payload, x.ackId]),
        [
          ['{"t":1}', m.ackId],
          ['{"t":2}', null],
          ['{"id":"x","status":"succeeded"}', null],
        ],
        'each publication is emitted once; only the QoS 1 reading holds an ack',
      );
      await c.endAsync();
    });

    it('closes the connection without a PUBACK when the reading could not be made durable', async () => {
      const { registry, broker } = await load();
      const c = await device(registry, 'ack-2');
      const got = next(helper.getNode('msgs'));
      const pub = track(c.publishAsync('devices/ack-2/telemetry', '{"t":1}', { qos: 1 }));
      const gone = closed(c);
      const m = await got;
      const failuresBefore = await metric('iotb_ingest_ack_failures_total');
      ackLedger.settle(m.ackId, 'failed');
      await gone;
      assert.equal(pub.acked, false);
      assert.equal(broker.stats().acks.failures, 1);
      assert.equal(await metric('iotb_ingest_ack_failures_total'), failuresBefore + 1);
      c.end(true);
    });

    it('PUBACKs a reading nobody stores after the ack timeout, and counts it in stats and metrics', async () => {
      const { registry, broker } = await load({}, { ackTimeoutS: 0.2 });
      const before = await metric('iotb_ingest_ack_timeouts_total');
      const c = await device(registry, 'ack-3');
      await c.publishAsync('devices/ack-3/telemetry', '{"t":1}', { qos: 1 });
      assert.equal(broker.stats().acks.timeouts, 1);
      assert.equal(await metric('iotb_ingest_ack_timeouts_total'), before + 1);
      await c.endAsync();
    });

    it('hands no more readings to the flow than the bound; the rest wait until held ones settle', async () => {
      const { registry, broker } = await load({}, { maxUnacked: 3 });
      const c = await device(registry, 'ack-4');
      const got: any[] = [];
      helper.getNode('msgs').on('input', (m: any) => got.push(m));
      const pubs = Array.from({ length: 8 }, (_, i) =>
        c.publishAsync('devices/ack-4/telemetry', `{"t":${i}}`, { qos: 1 }),
      );
      await until('the bound', () => got.length === 3 && broker.stats().acks.waiting === 5);
      assert.equal(await metric('iotb_ingest_acks_held'), 3);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(got.length, 3, 'nothing more is handed over while the bound is reached');
      for (let settled = 0; settled < 8; settled++) {
        await until('the next reading', () => got.length > settled);
        ackLedger.settle(got[settled].ackId, 'stored');
      }
      await Promise.all(pubs);
      assert.deepEqual(
        got.map((m): unknown => m.payload),
        Array.from({ length: 8 }, (_, i) => `{"t":${i}}`),
      );
      assert.deepEqual([broker.stats().acks.held, broker.stats().acks.waiting], [0, 0]);
      await c.endAsync();
    });

    it('emits micro-batches with parallel arrays when the batch size is above 1', async () => {
      const { registry } = await load({ batchSize: 3, batchWaitMs: 50 });
      const c = await device(registry, 'ack-5');
      const batch = next(helper.getNode('msgs'));
      const pubs = [1, 2, 3].map((i) => c.publishAsync('devices/ack-5/telemetry', `{"t":${i}}`, { qos: 1 }));
      const b = await batch;
      assert.equal(b.topic, 'batch');
      assert.deepEqual(b.payload, ['{"t":1}', '{"t":2}', '{"t":3}']);
      assert.deepEqual(
        (b.device as { id: string }[]).map((d) => d.id),
        ['ack-5', 'ack-5', 'ack-5'],
      );
      assert.equal(b.ackId.length, 3);
      ackLedger.settle(b.ackId, 'stored');
      await Promise.all(pubs);
      await c.endAsync();
    });

    it('does not acknowledge what it holds when it stops: the device is disconnected and resends', async () => {
      const { registry } = await load();
      const c = await device(registry, 'ack-6');
      const got = next(helper.getNode('msgs'));
      const pub = track(c.publishAsync('devices/ack-6/telemetry', '{"t":1}', { qos: 1 }));
      const m = await got;
      const gone = closed(c);
      await helper.unload();
      await gone;
      ackLedger.settle(m.ackId, 'stored');
      assert.equal(pub.acked, false);
      c.end(true);
    });

    it('a reading the spool cannot take (full) is not acknowledged: the connection closes, the device resends', async () => {
      const schema = JSON.stringify({ type: 'object', properties: { note: { type: 'string' } } });
      const deadPort = await freePort();
      const { registry, broker } = await load({ wires: [['v'], []] }, {}, [
        {
          id: 'v',
          type: 'iotb-validate',
          schemaSource: 'inline',
          schema,
          maxBytes: 65536,
          wires: [['w'], []],
        },
        {
          id: 'cfg',
          type: 'iotb-influx',
          flavour: '1',
          url: `http://127.0.0.1:${deadPort}`,
          database: 'iot',
        },
        // The smallest spool (64 KiB), InfluxDB unreachable: a few 20 kB readings fill it.
        {
          id: 'w',
          type: 'iotb-influx-write',
          influx: 'cfg',
          spoolMaxMB: 0.0625,
          closeTimeoutS: 0.2,
          wires: [[], [], []],
        },
      ]);
      const c = await device(registry, 'ack-9');
      const gone = closed(c);
      let acked = 0;
      for (let i = 0; i < 10 && c.connected; i++) {
        const pub = track(
          c.publishAsync('devices/ack-9/telemetry', JSON.stringify({ note: 'x'.repeat(20_000) }), { qos: 1 }),
        );
        if ((await Promise.race([pub.done, gone.then(() => 'closed')])) === 'closed') break;
        acked++;
      }
      await gone;
      assert.ok(acked >= 1 && acked < 10, `${acked} readings fitted before the spool was full`);
      assert.equal(broker.stats().acks.failures, 1);
      c.end(true);
    });

    it('iotb-influx-write acknowledges once spooled; a publication iotb-validate splits waits for both parts', async () => {
      const schema = JSON.stringify({
        type: 'object',
        properties: { t: { type: 'number' } },
        required: ['t'],
      });
      const deadPort = await freePort();
      const { registry, broker } = await load({ wires: [['v'], []] }, { ackTimeoutS: 20 }, [
        { id: 'v', type: 'iotb-validate', schemaSource: 'inline', schema, wires: [['w'], ['w2']] },
        {
          id: 'cfg',
          type: 'iotb-influx',
          flavour: '1',
          url: `http://127.0.0.1:${deadPort}`,
          database: 'iot',
        },
        { id: 'w', type: 'iotb-influx-write', influx: 'cfg', closeTimeoutS: 0.2, wires: [[], [], []] },
        { id: 'w2', type: 'helper' },
      ]);
      const refused = next(helper.getNode('w2'));
      const c = await device(registry, 'ack-8');
      // A valid reading: iotb-influx-write settles it once spooled (InfluxDB is unreachable: the spool keeps it).
      await c.publishAsync('devices/ack-8/telemetry', '{"t":5}', { qos: 1 });
      const pub = track(c.publishAsync('devices/ack-8/telemetry', '[{"t":1},{"t":"x"}]', { qos: 1 }));
      const r = await refused;
      await until('one held ack', () => broker.stats().acks.held === 1);
      // The accepted part is spooled; the refused part (stored as an event in the shipped flow) is not yet.
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(pub.acked, false, 'the accepted part alone does not acknowledge the publication');
      ackLedger.settle(r.ackId, 'stored');
      await pub.done;
      assert.equal(broker.stats().acks.timeouts, 0);
      await c.endAsync();
    });
  });
});
