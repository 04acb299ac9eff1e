import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Spool } from '../../nodes/lib/spool';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { freePort, startInfluxd, tempDir, type Server } from '../support/servers';

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

  it('refuses input with SPOOL_FULL when the bounded spool is full, or drops the oldest when told to', async () => {
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
    const w = helper.getNode('wf');
    for (let i = 0; i < 3000; i++) w.receive({ device: { id: 'full' }, payload: { v: i } });
    await settled;
    assert.ok(accepted > 100 && refusals.length > 0, `${accepted} accepted`);
    for (const r of refusals) {
      assert.equal(r.code, 'SPOOL_FULL');
      assert.match(r.reason, /^point not accepted: spool full/);
    }
    await helper.unload();

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
