import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { DeviceBroker } from '../../nodes/lib/broker/broker';
import type { Registry } from '../../nodes/lib/registry/registry';
import { helper, nodeModule } from '../support/helper';
import { connectDevice, refusalCode } from '../support/mqtt-device';
import { freePort, tempDir } from '../support/servers';

const nodes = [nodeModule('registry'), nodeModule('broker'), nodeModule('device-in')];
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
  ): Promise<{ registry: Registry; broker: DeviceBroker }> => {
    const f = flow(extra);
    (f[1] as any).port = port;
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
    await c.publishAsync('devices/dev-1/telemetry', '{"t":20}', { qos: 1 });
    const m = await telemetry;
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
});
