import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { DeviceBroker } from '../../nodes/lib/broker/broker';
import type { Registry } from '../../nodes/lib/registry/registry';
import type { TwinService } from '../../nodes/lib/twin/twin-service';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { eventually, freePort, tempDir } from '../support/servers';

const nodes = [nodeModule('registry'), nodeModule('broker'), nodeModule('twin')];
const SECRET = 'node-test-registry-secret-0123456789abcdef';

describe('iotb-twin node (msg driven, in a real Node-RED runtime)', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = tempDir('twin-node');
    helper.settings({ userDir: dir.path });
    const port = await freePort();
    await helper.load(
      nodes,
      [
        { id: 'reg', type: 'iotb-registry', file: 'devices.json', types: [{ name: 'thermo' }] },
        { id: 'brk', type: 'iotb-broker', registry: 'reg', host: '127.0.0.1', port, topicPrefix: 'devices' },
        {
          id: 'twin',
          type: 'iotb-twin',
          broker: 'brk',
          changes: true,
          wires: [['changes'], ['points'], ['answers'], ['refused']],
        },
        { id: 'changes', type: 'helper' },
        { id: 'points', type: 'helper' },
        { id: 'answers', type: 'helper' },
        { id: 'refused', type: 'helper' },
      ],
      { reg: { secret: SECRET } },
    );
    (helper.getNode('reg').registry as Registry).createDevice({ id: 'd1', type: 'thermo' });
    // Unloading a broker still starting would leave its listener behind.
    const broker = helper.getNode('brk').broker as DeviceBroker;
    await eventually('the broker listens', () => broker.state === 'listening' || undefined);
  });
  afterEach(async () => {
    await helper.unload();
    dir.remove();
  });

  it('a patch from a flow updates desired; the change leaves as a message and a device_events point', async () => {
    const change = nextMessage(helper.getNode('changes'));
    const point = nextMessage(helper.getNode('points'));
    const answer = nextMessage(helper.getNode('answers'));
    helper.getNode('twin').receive({ deviceId: 'd1', payload: { intervalMs: 30_000 } });
    const a = await answer;
    assert.equal(a.statusCode, 200);
    assert.equal(a.payload.desired.version, 1);
    const c = await change;
    assert.equal(c.topic, 'twin/desired');
    assert.equal(c.deviceId, 'd1');
    assert.deepEqual(c.delta, { intervalMs: 30_000 });
    const p = (await point).payload;
    assert.deepEqual(
      { measurement: p.measurement, tags: p.tags, version: p.fields.version, pending: p.fields.pending },
      {
        measurement: 'device_events',
        tags: { device: 'd1', event: 'twin', side: 'desired' },
        version: 1,
        pending: 1,
      },
    );

    const reported = nextMessage(helper.getNode('changes'));
    (helper.getNode('brk').twins as TwinService).mergeReported('d1', { intervalMs: 30_000 });
    const r = await reported;
    assert.equal(r.topic, 'twin/reported');
    assert.deepEqual(r.patch, { intervalMs: 30_000 });
    assert.deepEqual(r.delta, {});
  });

  it('refuses a stale version, an unknown device and a non-object patch on output 4 with {code, reason}', async () => {
    const call = async (msg: Record<string, unknown>): Promise<any> => {
      const refused = nextMessage(helper.getNode('refused'));
      helper.getNode('twin').receive(msg);
      return refused;
    };
    helper.getNode('twin').receive({ deviceId: 'd1', payload: { a: 1 } });
    const stale = await call({ deviceId: 'd1', payload: { a: 2 }, version: 0 });
    assert.equal(stale.statusCode, 409);
    assert.equal(stale.payload.code, 'VERSION_CONFLICT');
    assert.deepEqual(stale.rejection.stage, 'twin');
    assert.equal((await call({ deviceId: 'ghost', payload: { a: 1 } })).statusCode, 404);
    const bad = await call({ deviceId: 'd1', payload: 'not json' });
    assert.deepEqual(bad.payload, {
      code: 'INVALID',
      reason: 'the body is not JSON (send a JSON merge patch object)',
    });
    assert.equal((await call({ operation: 'drop', deviceId: 'd1' })).payload.code, 'INVALID');
  });

  it('answers get and list', async () => {
    const patched = nextMessage(helper.getNode('answers'));
    helper.getNode('twin').receive({ deviceId: 'd1', payload: { a: 1 } });
    await patched;
    const got = nextMessage(helper.getNode('answers'));
    helper.getNode('twin').receive({ operation: 'get', deviceId: 'd1' });
    const g = await got;
    assert.equal(g.headers.ETag, '"1"');
    const listed = nextMessage(helper.getNode('answers'));
    helper.getNode('twin').receive({ operation: 'list', req: { query: { where: 'desired.a == 1' } } });
    const l = await listed;
    assert.equal(l.payload.total, 1);
  });
});
