/**
 * A micro-batch of many devices through iotb-validate → iotb-quality → iotb-influx-write in the real runtime,
 * into a real influxd: every reading stored under its own device, every refusal alone, every acknowledgement
 * settled only when all parts of its publication are durable.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ackLedger } from '../../nodes/lib/ingest/ack-ledger';
import { recordingOwner } from '../support/acks';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { eventually, influxRows, startInfluxd, tempDir, type Server } from '../support/servers';

const modules = ['registry', 'validate', 'quality', 'influx', 'influx-write'].map(nodeModule);

describe('a micro-batch through validate, quality and the writer', () => {
  const dir = tempDir('batch-pipeline');
  let influx: Server;
  before(async () => {
    influx = await startInfluxd({ database: 'iot' });
    helper.settings({ userDir: dir.path });
    await helper.startServer();
  });
  after(async () => {
    await helper.unload();
    await helper.stopServer();
    await influx?.stop();
    dir.remove();
  });

  it('stores each valid reading under its device, refuses the others alone, acknowledges when all parts are durable', async () => {
    await helper.load(modules, [
      {
        id: 'reg',
        type: 'iotb-registry',
        file: join(dir.path, 'registry.json'),
        types: [
          {
            name: 'thermo',
            schema: JSON.stringify({
              type: 'object',
              properties: { temperature: { type: 'number', maximum: 150 } },
              required: ['temperature'],
            }),
          },
          {
            name: 'meter',
            schema: JSON.stringify({ type: 'object', properties: { kwh: { type: 'number', minimum: 0 } } }),
          },
        ],
      },
      { id: 'v', type: 'iotb-validate', schemaSource: 'type', registry: 'reg', wires: [['q'], ['rej']] },
      {
        id: 'q',
        type: 'iotb-quality',
        persist: false,
        checkOtherFields: false,
        rules: [{ field: 'temperature', max: 90, rangeAction: 'reject', spike: false }],
        wires: [['w'], ['rej']],
      },
      { id: 'db', type: 'iotb-influx', flavour: '1', url: influx.url, database: 'iot', timeoutS: 2 },
      {
        id: 'w',
        type: 'iotb-influx-write',
        influx: 'db',
        confirm: true,
        flushIntervalMs: 50,
        closeTimeoutS: 0.5,
        wires: [['ok'], ['rej'], []],
      },
      { id: 'ok', type: 'helper' },
      { id: 'rej', type: 'helper' },
    ]);
    const owner = recordingOwner();
    const { outcomes } = owner;
    const ids = Array.from({ length: 6 }, () => owner.hold());
    const rejected: any[] = [];
    const threeRejected = new Promise<void>((resolve) =>
      helper.getNode('rej').on('input', (m: any) => {
        rejected.push(m);
        if (rejected.length === 3) resolve();
      }),
    );
    const stored = nextMessage(helper.getNode('ok'));
    const T = Date.now() - 60_000;
    const t1 = { id: 't1', type: 'thermo' };
    const m1 = { id: 'm1', type: 'meter' };
    helper.getNode('v').receive({
      topic: 'batch',
      device: [t1, m1, { id: 't2', type: 'thermo' }, t1, m1, { id: 't3', type: 'thermo' }],
      ackId: ids,
      payload: [
        Buffer.from(JSON.stringify({ ts: T, temperature: 21 })),
        JSON.stringify([
          { ts: T, kwh: 1 },
          { ts: T + 1000, kwh: 2 },
        ]),
        JSON.stringify({ ts: T, temperature: 999 }), // over the schema's maximum: validate refuses
        Buffer.from(JSON.stringify({ ts: T + 1000, temperature: 22 })),
        JSON.stringify([
          { ts: T + 2000, kwh: 3 },
          { ts: T + 3000, kwh: -1 },
        ]), // second: validate refuses
        JSON.stringify({ ts: T, temperature: 100 }), // over the quality rule's range: quality refuses
      ],
    });
    assert.deepEqual((await stored).influx, { accepted: 5 });
    await threeRejected;
    assert.deepEqual(
      rejected.map((m): unknown[] => [m.rejection.stage, m.rejection.code, m.device.id, m.ackId]),
      [
        ['validate', 'SCHEMA', 't2', ids[2]],
        ['validate', 'SCHEMA', 'm1', ids[4]],
        ['quality', 'RANGE', 't3', ids[5]],
      ],
    );
    assert.deepEqual(
      [...outcomes].sort(([a], [b]) => a - b),
      [
        [ids[0], 'stored'],
        [ids[1], 'stored'],
        [ids[3], 'stored'],
      ],
      'a publication with a refused part waits for its rejection to be stored',
    );
    // What the device_events writer does in the shipped flow once a rejection is in its spool.
    for (const m of rejected) ackLedger.settle(m.ackId, 'stored');
    assert.deepEqual(
      ids.map((id) => outcomes.get(id)),
      ids.map(() => 'stored'),
    );

    const rows = await eventually('the readings in InfluxDB', async () => {
      const r = await influxRows(influx.url, 'iot', 'SELECT * FROM telemetry', 'ms');
      return r.length >= 5 ? r : undefined;
    });
    assert.deepEqual(rows.map((r) => [r.device, r.type, r.time, r.temperature ?? r.kwh]).sort(), [
      ['m1', 'meter', T, 1],
      ['m1', 'meter', T + 1000, 2],
      ['m1', 'meter', T + 2000, 3],
      ['t1', 'thermo', T, 21],
      ['t1', 'thermo', T + 1000, 22],
    ]);
  });
});
