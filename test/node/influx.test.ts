import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { WriterHealthHolder } from '../../nodes/lib/health';
import { ackLedger } from '../../nodes/lib/ingest/ack-ledger';
import { metricsRegistry } from '../../nodes/lib/metrics';
import { Spool } from '../../nodes/lib/spool';
import { recordingOwner } from '../support/acks';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { eventually, freePort, influxRows, startInfluxd, tempDir, type Server } from '../support/servers';

const influxNode = nodeModule('influx');
const writeNode = nodeModule('influx-write');
const queryNode = nodeModule('influx-query');

describe('iotb-influx, iotb-influx-write and iotb-influx-query nodes', () => {
  const userDir = tempDir('influx-node');
  let influx: Server;
  before(async () => {
    influx = await startInfluxd({ database: 'iot' });
    helper.settings({ userDir: userDir.path });
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await influx?.stop();
    userDir.remove();
  });
  afterEach(() => helper.unload());

  const flow = (url: string, write: Record<string, unknown> = {}): unknown[] => [
    { id: 'cfg', type: 'iotb-influx', flavour: '1', url, database: 'iot', timeoutS: 2 },
    {
      id: 'w',
      type: 'iotb-influx-write',
      influx: 'cfg',
      confirm: true,
      flushIntervalMs: 50,
      closeTimeoutS: 0.5,
      wires: [['ok'], ['bad'], ['stats']],
      ...write,
    },
    { id: 'ok', type: 'helper' },
    { id: 'bad', type: 'helper' },
    { id: 'stats', type: 'helper' },
  ];

  it('confirms accepted readings and rejects unwritable ones with a reason on the rejected output', async () => {
    await helper.load([influxNode, writeNode], flow(influx.url));
    const ok = nextMessage(helper.getNode('ok'));
    helper.getNode('w').receive({ device: { id: 'n1' }, payload: { v: 1.5 }, timestamp: 1_700_000_000_000 });
    assert.deepEqual((await ok).influx, { accepted: 1 });
    const cases: [unknown, string][] = [
      [{ v: NaN }, 'NOT_FINITE'],
      [{ _v: 1 }, 'RESERVED_NAME'],
      [{ time: 1 }, 'RESERVED_NAME'],
      [{ s: 'a\nb' }, 'LINE_BREAK'],
      [{ nested: { a: 1 } }, 'BAD_FIELD'],
      ['text', 'BAD_INPUT'],
      [{ v: 'now a string' }, 'TYPE_CONFLICT'],
    ];
    for (const [payload, code] of cases) {
      const bad = nextMessage(helper.getNode('bad'));
      helper.getNode('w').receive({ device: { id: 'n1' }, payload });
      const msg = await bad;
      assert.equal(msg.rejection.stage, 'influx');
      assert.equal(msg.rejection.code, code, JSON.stringify(payload));
      assert.ok(msg.rejection.reason.length > 10);
    }
  });

  it('stores every point of a batch of many devices, settles ack ids once spooled, refuses a bad element alone', async () => {
    await helper.load([influxNode, writeNode], flow(influx.url, { measurement: 'batch_test' }));
    const owner = recordingOwner();
    const ids = [owner.hold(), owner.hold(), owner.hold(), owner.hold()];
    const T = 1_700_000_100_000;
    const a = { id: 'a', type: 'thermo' };
    const ok = nextMessage(helper.getNode('ok'));
    const bad = nextMessage(helper.getNode('bad'));
    helper.getNode('w').receive({
      topic: 'batch',
      device: [a, { id: 'b', type: 'meter' }, a, { id: 'c', type: 'thermo' }],
      payload: [{ v: 1 }, { v: 2 }, { v: { nested: 1 } }, { v: 4 }],
      timestamp: [T, T, T + 1, T + 2],
      quality: [null, { v: { flag: 'suspect' } }, null, null],
      messageId: ['m0', 'm1', 'm2', 'm3'],
      ackId: ids,
    });
    const refused = await bad;
    assert.deepEqual(
      [refused.payload, refused.device, refused.ackId, refused.timestamp, refused.messageId],
      [{ v: { nested: 1 } }, a, ids[2], T + 1, 'm2'],
    );
    assert.deepEqual([refused.rejection.code, refused.rejection.details.index], ['BAD_FIELD', 2]);
    assert.deepEqual((await ok).influx, { accepted: 3 });
    assert.deepEqual(
      [...owner.outcomes],
      [
        [ids[0], 'stored'],
        [ids[1], 'stored'],
        [ids[3], 'stored'],
      ],
      'the refused element is settled where its rejection is stored, not here',
    );
    const rows = await eventually('the batch in InfluxDB', async () => {
      const r = await influxRows(influx.url, 'iot', 'SELECT * FROM batch_test', 'ms');
      return r.length === 3 ? r : undefined;
    });
    assert.deepEqual(
      rows.map((r) => [r.time, r.device, r.type, r.v, r.v_flag]),
      [
        [T, 'a', 'thermo', 1, null],
        [T, 'b', 'meter', 2, 'suspect'],
        [T + 2, 'c', 'thermo', 4, null],
      ],
    );

    // One ack id for a whole array: the stored part and the refused element each hold a reference.
    const shared = owner.hold();
    const ok2 = nextMessage(helper.getNode('ok'));
    const bad2 = nextMessage(helper.getNode('bad'));
    helper
      .getNode('w')
      .receive({ device: a, payload: [{ v: 5 }, { v: 'text' }], timestamp: [T + 3, T + 4], ackId: shared });
    assert.equal((await bad2).ackId, shared);
    await ok2;
    assert.equal(owner.outcomes.get(shared), undefined, 'stored part spooled, refused part not yet durable');
    ackLedger.settle(shared, 'stored');
    assert.equal(owner.outcomes.get(shared), 'stored');
    owner.close();
  });

  it('keeps what it could not send in the spool when closed during an outage', async () => {
    const port = await freePort(); // nothing listens here: InfluxDB is down
    await helper.load(
      [influxNode, writeNode],
      // its own spool: a reading of an earlier test may still be in flight in spool 'w' under load
      flow(`http://127.0.0.1:${port}`, { id: 'w-down', statsIntervalS: 0.2 }),
    );
    const w = helper.getNode('w-down');
    for (let i = 0; i < 10; i++) {
      const ok = nextMessage(helper.getNode('ok'));
      w.receive({ device: { id: 'n2' }, payload: { v: i } });
      await ok;
    }
    const stats = await nextMessage(helper.getNode('stats'));
    assert.equal(stats.topic, 'stats');
    assert.equal(stats.payload.queued, 10);
    assert.equal(typeof stats.payload.spool.pendingBytes, 'number');
    await helper.unload();
    const spool = await Spool.open({ dir: join(userDir.path, 'iotb-spool', 'w-down') });
    assert.equal(spool.stats().pendingRecords, 10);
    await spool.close();
  });

  it('refuses input with SPOOL_FULL when the bounded spool is full (its acks failed, health and gauges say so), or drops the oldest when told to', async () => {
    const port = await freePort(); // InfluxDB down: nothing drains the spool
    const url = `http://127.0.0.1:${port}`;
    await helper.load(
      [influxNode, writeNode],
      flow(url, { id: 'wf', spoolMaxMB: 0.0625, whenFull: 'refuse' }),
    );
    let accepted = 0;
    const refusals: any[] = [];
    const settled = new Promise<void>((resolve) => {
      const check = (): void => {
        if (accepted + refusals.length === 3000) resolve();
      };
      helper.getNode('ok').on('input', () => {
        accepted++;
        check();
      });
      helper.getNode('bad').on('input', (m: any) => {
        refusals.push(m.rejection);
        check();
      });
    });
    // Each reading holds an acknowledgement, as an ingest source does; a refused one must not be acknowledged.
    const refusedIds: number[] = [];
    helper.getNode('bad').on('input', (m: any) => refusedIds.push(m.ackId));
    const w = helper.getNode('wf');
    const owner = recordingOwner();
    for (let i = 0; i < 3000; i++)
      w.receive({ device: { id: 'full' }, payload: { v: i }, ackId: owner.hold() });
    await settled;
    assert.ok(accepted > 100 && refusals.length > 0, `${accepted} accepted`);
    const outcomes = [...owner.outcomes.values()];
    assert.equal(outcomes.filter((o) => o === 'stored').length, accepted);
    for (const id of refusedIds)
      assert.equal(owner.outcomes.get(id), 'failed', `ack ${id} of a refused reading`);
    assert.equal(
      outcomes.filter((o) => o === 'failed').length,
      refusals.length,
      'refused: never acknowledged',
    );
    // A batch of many devices on the full spool: each reading refused alone under its device, none acknowledged.
    const ids = [owner.hold(), owner.hold()];
    const perDevice = new Promise<any[]>((resolve) => {
      const got: any[] = [];
      helper.getNode('bad').on('input', (m: any) => {
        if (got.push(m) === 2) resolve(got);
      });
    });
    w.receive({ device: [{ id: 'x' }, { id: 'y' }], payload: [{ v: 1 }, { v: 2 }], ackId: ids });
    assert.deepEqual(
      (await perDevice).map((m): unknown[] => [
        m.device.id,
        m.ackId,
        m.rejection.code,
        m.rejection.details.index,
      ]),
      [
        ['x', ids[0], 'SPOOL_FULL', 0],
        ['y', ids[1], 'SPOOL_FULL', 1],
      ],
    );
    assert.deepEqual(
      ids.map((id) => owner.outcomes.get(id)),
      ['failed', 'failed'],
    );
    owner.close();
    for (const r of refusals) {
      assert.equal(r.code, 'SPOOL_FULL');
      assert.match(r.reason, /^point not accepted: spool full/);
    }
    assert.equal(refusedIds.length, refusals.length);

    const health = (w as unknown as WriterHealthHolder).writerSnapshot!();
    assert.equal(health?.spool?.full, true);
    assert.equal(health?.spool?.diskFull, false);
    assert.ok((health?.spool?.freeBytes ?? 0) > 0);
    const text = await metricsRegistry.metrics();
    assert.match(text, new RegExp(`iotb_spool_pending_records\\{writer="wf",name=""\\} ${accepted}\n`));
    assert.match(text, /iotb_spool_pending_bytes\{writer="wf",name=""\} [1-9]\d*\n/);
    assert.match(text, /iotb_spool_volume_free_bytes\{writer="wf",name=""\} [1-9]\d*\n/);
    assert.match(text, /iotb_spool_refusing\{writer="wf",name=""\} 1\n/);
    await helper.unload();
    assert.doesNotMatch(await metricsRegistry.metrics(), /writer="wf"/, 'a closed writer leaves the gauges');

    await helper.load(
      [influxNode, writeNode],
      flow(url, { id: 'wd', spoolMaxMB: 0.0625, whenFull: 'drop-oldest', statsIntervalS: 0.3 }),
    );
    let refused = 0;
    let ok = 0;
    helper.getNode('bad').on('input', () => refused++);
    const wd = helper.getNode('wd');
    // In waves: one burst larger than the whole spool cannot be taken even by dropping (spool docs).
    for (let wave = 0; wave < 15; wave++) {
      const all = new Promise<void>((resolve) => {
        const okNode = helper.getNode('ok');
        const onOk = (): void => {
          if (++ok % 200 === 0) {
            okNode.removeListener('input', onOk);
            resolve();
          }
        };
        okNode.on('input', onOk);
      });
      for (let i = 0; i < 200; i++) wd.receive({ device: { id: 'drop' }, payload: { v: wave * 200 + i } });
      await all;
    }
    assert.equal(refused, 0);
    const stats = await nextMessage(helper.getNode('stats'));
    assert.ok(stats.payload.spool.droppedOldest > 0, 'dropped points are counted and reported');
  });

  it('answers "test connection" from the editor precisely', async () => {
    await helper.load(
      [influxNode],
      [{ id: 'cfg', type: 'iotb-influx', flavour: '1', url: influx.url, database: 'iot' }],
    );
    const port = await freePort();
    const res = await helper
      .request()
      .post('/iotb-influx/test')
      .send({ flavour: '1', url: `http://127.0.0.1:${port}`, database: 'iot', credentials: {} })
      .expect(200);
    assert.equal(res.body.ok, false);
    assert.match(res.body.message, /nothing listens on 127\.0\.0\.1:\d+/);
    const missing = await helper
      .request()
      .post('/iotb-influx/test')
      .send({
        id: 'cfg',
        flavour: '1',
        url: influx.url,
        database: 'nope',
        credentials: { password: '__PWRD__' },
      })
      .expect(200);
    assert.match(missing.body.message, /database "nope" does not exist/);
  });

  it('queries with bound parameters and answers rows and chart series', async () => {
    await fetch(`${influx.url}/write?db=iot`, {
      method: 'POST',
      body: 'telemetry,device=q1 t=1 1000000000\ntelemetry,device=q1 t=2 2000000000\ntelemetry,device=q2 t=9 1000000000',
    });
    await helper.load(
      [influxNode, queryNode],
      [
        { id: 'cfg', type: 'iotb-influx', flavour: '1', url: influx.url, database: 'iot' },
        {
          id: 'q',
          type: 'iotb-influx-query',
          influx: 'cfg',
          language: 'influxql',
          query: 'SELECT t FROM telemetry WHERE device = $device',
          params: '{}',
          wires: [['out']],
        },
        { id: 'out', type: 'helper' },
      ],
    );
    const got = nextMessage(helper.getNode('out'));
    helper.getNode('q').receive({ params: { device: 'q1' } });
    const msg = await got;
    assert.deepEqual(
      msg.payload.map((r: { time: number; t: number }) => [r.time, r.t]),
      [
        [1000, 1],
        [2000, 2],
      ],
    );
    assert.deepEqual(msg.chart[0].series, ['t']);
  });
});
