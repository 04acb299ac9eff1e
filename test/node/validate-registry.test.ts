/** iotb-validate choosing each device type's schema from the real iotb-registry config node. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { ackLedger } from '../../nodes/lib/ingest/ack-ledger';
import { recordingOwner } from '../support/acks';
import { helper, nodeModule, receivedUntil, type TestNode } from '../support/helper';
import { tempDir } from '../support/servers';

const registryNode = nodeModule('registry');
const validateNode = nodeModule('validate');

const thermo = {
  type: 'object',
  properties: { temperature: { type: 'number', maximum: 150 } },
  required: ['temperature'],
};
const meter = { type: 'object', properties: { kwh: { type: 'number', minimum: 0 } }, required: ['kwh'] };

describe('iotb-validate with the device registry', () => {
  const dir = tempDir('validate-registry');
  before(() => helper.startServer());
  after(async () => {
    await helper.stopServer();
    dir.remove();
  });
  afterEach(() => helper.unload());

  async function load(
    config: Record<string, unknown> = {},
  ): Promise<{ v: TestNode; ok: TestNode; bad: TestNode; reg: TestNode }> {
    await helper.load(
      [registryNode, validateNode],
      [
        {
          id: 'reg',
          type: 'iotb-registry',
          file: join(dir.path, 'registry.json'),
          types: [
            { name: 'thermo', schema: JSON.stringify(thermo) },
            { name: 'meter', schema: JSON.stringify(meter) },
            { name: 'bare' },
          ],
        },
        {
          id: 'v',
          type: 'iotb-validate',
          schemaSource: 'type',
          registry: 'reg',
          wires: [['ok'], ['bad']],
          ...config,
        },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
      ],
    );
    return {
      v: helper.getNode('v'),
      ok: helper.getNode('ok'),
      bad: helper.getNode('bad'),
      reg: helper.getNode('reg'),
    };
  }

  function send(
    n: { v: TestNode; ok: TestNode; bad: TestNode },
    msg: unknown,
  ): Promise<{ out: 0 | 1; msg: any }> {
    return new Promise((resolve) => {
      const onOk = (m: any): void => finish(0, m);
      const onBad = (m: any): void => finish(1, m);
      function finish(out: 0 | 1, m: any): void {
        n.ok.removeListener('input', onOk);
        n.bad.removeListener('input', onBad);
        resolve({ out, msg: m });
      }
      n.ok.on('input', onOk);
      n.bad.on('input', onBad);
      n.v.receive(msg);
    });
  }

  it('validates each reading against its device type schema', async () => {
    const n = await load();
    const t = { id: 't1', type: 'thermo' };
    const m = { id: 'm1', type: 'meter' };
    assert.equal((await send(n, { device: t, payload: '{"temperature":21}' })).out, 0);
    const hot = await send(n, { device: t, payload: '{"temperature":999}' });
    assert.equal(hot.msg.rejection.reason, 'temperature must be <= 150 (got 999)');
    // The meter's schema, not the thermometer's, applies to the meter.
    assert.equal((await send(n, { device: m, payload: '{"kwh":3.5}' })).out, 0);
    const negative = await send(n, { device: m, payload: '{"kwh":-1}' });
    assert.equal(negative.msg.rejection.reason, 'kwh must be >= 0 (got -1)');
    const wrongType = await send(n, { device: m, payload: '{"temperature":21}' });
    assert.equal(wrongType.msg.rejection.reason, 'kwh is required');
  });

  it('refuses readings of unknown types and types without a schema with NO_SCHEMA', async () => {
    const n = await load();
    const unknown = await send(n, { device: { id: 'x', type: 'toaster' }, payload: '{"a":1}' });
    assert.equal(unknown.msg.rejection.code, 'NO_SCHEMA');
    assert.equal(unknown.msg.rejection.reason, 'device type toaster is not in the registry');
    const bare = await send(n, { device: { id: 'x', type: 'bare' }, payload: '{"a":1}' });
    assert.equal(bare.msg.rejection.reason, 'device type bare has no telemetry schema');
    const anonymous = await send(n, { payload: '{"a":1}' });
    assert.equal(anonymous.msg.rejection.code, 'NO_SCHEMA');
  });

  it("uses a type's new schema as soon as the registry announces changed types", async () => {
    const n = await load();
    const t = { id: 't1', type: 'thermo' };
    assert.equal((await send(n, { device: t, payload: '{"temperature":120}' })).out, 0);
    n.reg.registry.putType({
      name: 'thermo',
      schema: { ...thermo, properties: { temperature: { type: 'number', maximum: 100 } } },
    });
    const after = await send(n, { device: t, payload: '{"temperature":120}' });
    assert.equal(after.msg.rejection.reason, 'temperature must be <= 100 (got 120)');
    n.reg.registry.putType({ name: 'toaster', schema: { type: 'object' } });
    assert.equal((await send(n, { device: { id: 'x', type: 'toaster' }, payload: '{"a":1}' })).out, 0);
  });

  it('validates a micro-batch of many devices and types: valid readings in one batch, each refusal alone', async () => {
    const n = await load();
    const owner = recordingOwner();
    const t1 = { id: 't1', type: 'thermo' };
    const t2 = { id: 't2', type: 'thermo' };
    const m1 = { id: 'm1', type: 'meter' };
    const ids = [owner.hold(), owner.hold(), owner.hold(), owner.hold(), owner.hold()];
    const ts = Date.now() - 5000;
    const out = receivedUntil({ ok: n.ok, bad: n.bad }, 4);
    n.v.receive({
      topic: 'batch',
      device: [t1, m1, t2, m1, t1],
      ackId: ids,
      payload: [
        Buffer.from('{"temperature":21}'),
        JSON.stringify([{ ts, kwh: 1 }, { kwh: 2 }]),
        '{"temperature":999}',
        Buffer.from(JSON.stringify([{ kwh: 3 }, { kwh: -1 }])),
        'not json',
      ],
    });
    const { ok, bad } = await out;
    assert.equal(ok.length, 1);
    const batch = ok[0];
    assert.deepEqual(batch.payload, [{ temperature: 21 }, { kwh: 1 }, { kwh: 2 }, { kwh: 3 }]);
    assert.deepEqual(
      batch.device.map((d: { id: string }) => d.id),
      ['t1', 'm1', 'm1', 'm1'],
    );
    assert.deepEqual(batch.ackId, [ids[0], ids[1], ids[1], ids[3]]);
    assert.equal(batch.timestamp[1], ts);
    assert.equal(batch.messageId[1], `m1:${ts}`);
    for (const parallel of [batch.timestamp, batch.messageId]) assert.equal(parallel.length, 4);
    assert.deepEqual(
      bad.map((m): unknown[] => [
        m.rejection.code,
        m.rejection.details.index,
        m.rejection.details.reading,
        m.device.id,
        m.ackId,
      ]),
      [
        ['SCHEMA', 2, undefined, 't2', ids[2]],
        ['SCHEMA', 3, 1, 'm1', ids[3]],
        ['PARSE', 4, undefined, 't1', ids[4]],
      ],
    );
    assert.equal(bad[1].rejection.reason, 'reading 1: kwh must be >= 0 (got -1)');
    assert.deepEqual(bad[1].payload, { kwh: -1 });
    assert.equal(bad[2].payload, 'not json', 'a publication refused as a whole leaves as it came');

    // A writer settles each element of the batch and each refusal: an acknowledgement goes out only when
    // every part of its publication is settled.
    ackLedger.settle(batch.ackId, 'stored');
    assert.deepEqual(owner.seen, [
      [ids[0], 'stored'],
      [ids[1], 'stored'],
    ]);
    for (const m of bad) ackLedger.settle(m.ackId, 'stored');
    assert.deepEqual(
      owner.seen.map(([id]) => id),
      ids.slice(0, 2).concat(ids[2], ids[3], ids[4]),
    );
    owner.close();
  });

  it('splits a micro-batch into one message per reading when configured, each with its device and ack id', async () => {
    const n = await load({ split: true });
    const owner = recordingOwner();
    const ids = [owner.hold(), owner.hold()];
    const out = receivedUntil({ ok: n.ok, bad: n.bad }, 3);
    n.v.receive({
      topic: 'batch',
      device: [
        { id: 't1', type: 'thermo' },
        { id: 'm1', type: 'meter' },
      ],
      ackId: ids,
      payload: ['{"temperature":20}', '[{"kwh":1},{"kwh":2}]'],
    });
    const { ok } = await out;
    assert.deepEqual(
      ok.map((m): unknown[] => [m.device.id, m.ackId, m.payload, typeof m.timestamp]),
      [
        ['t1', ids[0], { temperature: 20 }, 'number'],
        ['m1', ids[1], { kwh: 1 }, 'number'],
        ['m1', ids[1], { kwh: 2 }, 'number'],
      ],
    );
    for (const m of ok.slice(0, 2)) ackLedger.settle(m.ackId, 'stored');
    assert.deepEqual(owner.seen, [[ids[0], 'stored']], 'the second reading of m1 is not settled yet');
    ackLedger.settle(ok[2].ackId, 'stored');
    assert.deepEqual(owner.seen[1], [ids[1], 'stored']);
    owner.close();
  });

  it('carries the ack id of one publication with an array of readings into every part', async () => {
    const n = await load();
    const owner = recordingOwner();
    const id = owner.hold();
    const out = receivedUntil({ ok: n.ok, bad: n.bad }, 2);
    n.v.receive({
      device: { id: 'm1', type: 'meter' },
      ackId: id,
      payload: '[{"kwh":1},{"kwh":-1},{"kwh":2}]',
    });
    const { ok, bad } = await out;
    assert.deepEqual(ok[0].ackId, [id, id]);
    assert.equal(bad[0].ackId, id);
    ackLedger.settle(ok[0].ackId, 'stored');
    assert.deepEqual(owner.seen, [], 'the refused reading is not durable yet');
    ackLedger.settle(bad[0].ackId, 'stored');
    assert.deepEqual(owner.seen, [[id, 'stored']]);
    owner.close();
  });

  it('refuses a micro-batch whose payload is not parallel to its devices, as a whole and counted', async () => {
    const n = await load();
    const out = receivedUntil({ ok: n.ok, bad: n.bad }, 1);
    n.v.receive({ topic: 'batch', device: [{ id: 't1', type: 'thermo' }], payload: '{"temperature":1}' });
    const { bad } = await out;
    assert.equal(bad[0].rejection.code, 'BATCH');
    assert.match(bad[0].rejection.reason, /parallel to msg.device/);
  });
});
