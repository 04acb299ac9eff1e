/**
 * The write node in a real `node-red` process against real influxd: readings go in over HTTP (answered 202
 * once they are in the spool, 400 with the reason when refused) and are read back with InfluxQL.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { naughtyStrings } from '../support/corpus';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { eventually, influxRows, startInfluxd, type Server } from '../support/servers';

function writeFlow(influxUrl: string): unknown[] {
  return [
    { id: 'tab1', type: 'tab', label: 'write' },
    { id: 'cfg', type: 'iotb-influx', flavour: '1', url: influxUrl, database: 'iot', timeoutS: 5 },
    { id: 'in', type: 'http in', z: 'tab1', url: '/ingest', method: 'post', wires: [['unpack']] },
    {
      id: 'unpack',
      type: 'function',
      z: 'tab1',
      func: 'const b = msg.payload; msg.device = b.device; msg.timestamp = b.timestamp; msg.payload = b.payload; return msg;',
      outputs: 1,
      wires: [['w']],
    },
    {
      id: 'w',
      type: 'iotb-influx-write',
      z: 'tab1',
      influx: 'cfg',
      measurement: 'telemetry',
      confirm: true,
      flushIntervalMs: 100,
      batchRecords: 1000,
      closeTimeoutS: 2,
      wires: [['ok'], ['bad'], []],
    },
    {
      id: 'ok',
      type: 'change',
      z: 'tab1',
      rules: [{ t: 'set', p: 'statusCode', pt: 'msg', to: '202', tot: 'num' }],
      wires: [['res']],
    },
    {
      id: 'bad',
      type: 'function',
      z: 'tab1',
      func: 'if (!msg.res) return null; msg.statusCode = 400; msg.payload = msg.rejection; return msg;',
      outputs: 1,
      wires: [['res']],
    },
    { id: 'res', type: 'http response', z: 'tab1', wires: [] },
  ];
}

/** Status 0: no answer (connection failed), so whether the reading was accepted is unknown. */
async function post(nr: NodeRedProcess, body: unknown): Promise<{ status: number; body: any }> {
  try {
    const res = await fetch(`${nr.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  } catch (err) {
    return { status: 0, body: String((err as Error & { cause?: unknown }).cause ?? err) };
  }
}

describe('iotb-influx-write in a real Node-RED with real InfluxDB', () => {
  let influx: Server | undefined;
  let nr: NodeRedProcess | undefined;
  afterEach(async () => {
    await nr?.stop();
    await influx?.stop();
    nr = undefined;
    influx = undefined;
  });

  it('stores naughty strings as tag values and string fields byte-exact, or refuses them with a reason', async () => {
    influx = await startInfluxd({ database: 'iot' });
    nr = await startNodeRed({ flows: writeFlow(influx.url) });
    const naughty = naughtyStrings();
    const base = 1_700_000_000_000;
    const accepted = new Map<number, string>();
    const refusedCodes = new Map<string, number>();
    for (let i = 0; i < naughty.length; i++) {
      const reading = {
        payload: {
          measurement: 'naughty',
          tags: { device: 'blns', text: naughty[i] },
          fields: { s: naughty[i], i },
          timestamp: base + i,
        },
      };
      let r = await post(nr, reading);
      if (r.status === 0) r = await post(nr, reading); // explicit timestamp: a re-send is idempotent
      if (r.status === 202) accepted.set(i, naughty[i]);
      else {
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.stage, 'influx');
        assert.ok(r.body.reason.length > 10, r.body.reason);
        refusedCodes.set(r.body.code, (refusedCodes.get(r.body.code) ?? 0) + 1);
      }
    }
    // Refusals are limited to what cannot be written faithfully (see docs/storage.md).
    for (const code of refusedCodes.keys())
      assert.ok(['EMPTY', 'CONTROL_CHARACTER', 'AMBIGUOUS_BACKSLASH', 'LINE_BREAK'].includes(code), code);
    assert.ok(accepted.size > 450, `only ${accepted.size} of ${naughty.length} accepted`);
    const stored = await eventually(
      'all accepted naughty points stored',
      async () => {
        const rows = await influxRows(influx!.url, 'iot', 'SELECT * FROM naughty');
        return rows.length >= accepted.size ? rows : undefined;
      },
      60_000,
    );
    assert.equal(stored.length, accepted.size, 'no extra or lost lines');
    for (const row of stored) {
      // Exactly our columns: no injected tag or field.
      assert.deepEqual(Object.keys(row).sort(), ['device', 'i', 's', 'text', 'time']);
      const i = row.i as number;
      assert.equal(Date.parse(row.time as string), base + i);
      assert.equal(row.s, accepted.get(i), `field of string ${i}`);
      assert.equal(row.text, accepted.get(i), `tag of string ${i}`);
    }
  });

  it('loses nothing and duplicates nothing across an InfluxDB outage with a kill -9 of Node-RED', async () => {
    influx = await startInfluxd({ database: 'iot' });
    nr = await startNodeRed({ flows: writeFlow(influx.url) });
    const accepted = new Set<number>();
    let seq = 0;
    // Readings without timestamps: the writer fixes the time at acceptance, so a re-send with a new time
    // would show up as a second point for the same seq.
    const stream = async (n: number): Promise<void> => {
      const workers = Array.from({ length: 4 }, async () => {
        while (n-- > 0) {
          const s = seq++;
          const r = await post(nr!, { device: { id: 'o1', type: 't' }, payload: { seq: s } });
          if (r.status === 0) continue; // no answer: not known to be accepted (it may still be stored once)
          assert.equal(r.status, 202, JSON.stringify(r.body));
          accepted.add(s);
        }
      });
      await Promise.all(workers);
    };
    await stream(300);
    await influx.pause();
    await stream(300);
    await nr.crashAndRestart(); // kill -9 while InfluxDB is down, then start Node-RED again
    await stream(200);
    await influx.start();
    await stream(100);
    const stored = await eventually(
      'every accepted reading stored',
      async () => {
        const rows = await influxRows(influx!.url, 'iot', "SELECT seq FROM telemetry WHERE device = 'o1'");
        return rows.length >= accepted.size ? rows : undefined;
      },
      60_000,
    );
    const perSeq = new Map<number, number>();
    for (const r of stored) perSeq.set(r.seq as number, (perSeq.get(r.seq as number) ?? 0) + 1);
    for (const s of accepted) assert.equal(perSeq.get(s), 1, `seq ${s} stored ${perSeq.get(s) ?? 0} times`);
    // Readings whose request got no answer (cut by the kill) may be stored too, but never twice.
    for (const [s, n] of perSeq) assert.equal(n, 1, `seq ${s} stored ${n} times`);
    assert.ok(accepted.size >= 850, `${accepted.size} accepted`);
    const times = new Set(stored.map((r) => r.time as string)); // RFC 3339 with ns: exact
    assert.equal(times.size, stored.length, 'one point per device and timestamp');
  });
});
