import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileReadingSchema,
  DuplicateWindow,
  locateJsonError,
  ReadingClock,
  readTimestamp,
  SchemaError,
  validatePayload,
  DEFAULT_LIMITS,
  DEFAULT_WINDOW,
  type ValidateContext,
} from '../../nodes/lib/validate';
import { AckLedger } from '../../nodes/lib/ingest/ack-ledger';
import { metricsRegistry } from '../../nodes/lib/metrics';
import { decimal } from '../../nodes/lib/validate/readings';
import { toTimeNs } from '../../nodes/lib/influx/line-protocol';

const now = Date.parse('2026-06-01T12:00:00Z');
const thermo = compileReadingSchema({
  type: 'object',
  properties: {
    temperature: { type: 'number', minimum: -40, maximum: 150 },
    humidity: { type: 'number', minimum: 0, maximum: 100 },
    mode: { enum: ['eco', 'boost'] },
  },
  required: ['temperature'],
});

function run(payload: unknown, extra: Partial<ValidateContext> = {}) {
  return validatePayload(payload, { schema: thermo, now, count: false, ...extra });
}

function codeOf(payload: unknown, extra: Partial<ValidateContext> = {}): string {
  const v = run(payload, extra);
  assert.equal(v.rejected.length, 1, JSON.stringify(v));
  return v.rejected[0].rejection.code;
}

/** The time and message id a reading was accepted with. */
function accepted(payload: string, extra: Partial<ValidateContext>): [number, string] {
  const v = run(payload, extra);
  assert.equal(v.accepted.length, 1, JSON.stringify(v));
  return [v.accepted[0].timestamp, v.accepted[0].messageId];
}

/** What the duplicate window says of a reading just before it is judged (and accepted). */
function outcome(payload: string, extra: { deviceId: string; duplicates: DuplicateWindow }): string {
  const reading = JSON.parse(payload) as Record<string, unknown>;
  const ts = typeof reading.ts === 'string' ? Date.parse(reading.ts) : (reading.ts as number | undefined);
  const id = reading.id as string | undefined;
  const said = extra.duplicates.lookup(extra.deviceId, ts, id, reading);
  assert.equal(run(payload, extra).accepted.length, 1, `${payload} accepted`);
  return said;
}

async function duplicatesCounted(): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric('iotb_duplicates_total')?.get();
  return metric?.values.find((v) => v.labels.stage === 'validate')?.value ?? 0;
}

describe('validatePayload', () => {
  it('accepts a reading from Buffer, string and object alike, with ts and id taken out', () => {
    for (const payload of [
      Buffer.from(`{"ts":${now - 1000},"id":"m-1","temperature":21.5}`),
      `{"ts":${now - 1000},"id":"m-1","temperature":21.5}`,
      { ts: now - 1000, id: 'm-1', temperature: 21.5 },
    ]) {
      const v = run(payload, { deviceId: 'd1' });
      assert.deepEqual(v, {
        batch: false,
        accepted: [{ fields: { temperature: 21.5 }, timestamp: now - 1000, messageId: 'm-1' }],
        rejected: [],
      });
    }
  });

  it('uses the receive time and a deterministic message id without ts and id', () => {
    const v = run('{"temperature":1}', { deviceId: 'd1' });
    assert.deepEqual(v.accepted[0], { fields: { temperature: 1 }, timestamp: now, messageId: `d1:${now}` });
  });

  it('says in words what the schema refused: "temperature must be <= 150 (got 999)"', () => {
    const v = run('{"temperature":999}');
    assert.deepEqual(v.rejected[0].rejection, {
      stage: 'validate',
      code: 'SCHEMA',
      reason: 'temperature must be <= 150 (got 999)',
      details: {
        violations: [
          {
            path: '/temperature',
            message: 'temperature must be <= 150 (got 999)',
            expected: '<= 150',
            actual: 999,
          },
        ],
      },
    });
    assert.equal(run('{"humidity":5}').rejected[0].rejection.reason, 'temperature is required');
    assert.equal(
      run('{"temperature":"hot"}').rejected[0].rejection.reason,
      'temperature must be a number (got "hot")',
    );
    assert.equal(
      run('{"temperature":1,"mode":"turbo"}').rejected[0].rejection.reason,
      'mode must be one of "eco", "boost" (got "turbo")',
    );
  });

  it('judges each reading of a batch on its own and names the index of the bad ones', () => {
    const v = run(
      JSON.stringify([
        { ts: now - 3000, temperature: 20 },
        { ts: now - 2000, temperature: 999 },
        'oops',
        { ts: now - 1000, temperature: 22, humidity: 101 },
        { ts: 1_780_000_000, temperature: 23 },
        { temperature: 24 },
      ]),
      { deviceId: 'd1' },
    );
    assert.equal(v.batch, true);
    assert.deepEqual(
      v.accepted.map((a) => [a.index, a.fields.temperature, a.messageId]),
      [
        [0, 20, `d1:${now - 3000}`],
        [5, 24, `d1:${now}:5`],
      ],
    );
    assert.deepEqual(
      v.rejected.map((r) => [
        r.index,
        r.rejection.code,
        (r.rejection.details as { index?: number } | undefined)?.index,
      ]),
      [
        [1, 'SCHEMA', 1],
        [2, 'NOT_OBJECT', 2],
        [3, 'SCHEMA', 3],
        [4, 'TIMESTAMP', 4],
      ],
    );
    assert.equal(v.rejected[0].rejection.reason, 'reading 1: temperature must be <= 150 (got 999)');
    assert.deepEqual(v.rejected[1].value, 'oops');
  });

  it('refuses an empty batch and one with more readings than allowed', () => {
    assert.equal(codeOf('[]'), 'EMPTY');
    const limits = { ...DEFAULT_LIMITS, maxArrayLength: 2 };
    assert.equal(codeOf('[{"temperature":1},{"temperature":1},{"temperature":1}]', { limits }), 'TOO_LARGE');
  });

  it('refuses oversize payloads by their UTF-8 byte count before parsing', () => {
    const limits = { ...DEFAULT_LIMITS, maxBytes: 20 };
    assert.equal(codeOf(Buffer.alloc(21, 0x20), { limits }), 'TOO_LARGE');
    // 7 characters, 21 bytes.
    const v = run('"€€€€€€€"', { limits });
    assert.equal(v.rejected[0].rejection.code, 'TOO_LARGE');
    assert.deepEqual(v.rejected[0].rejection.details, { bytes: 23, limit: 20 });
  });

  it('refuses deep, wide and self-referencing object payloads without recursion', () => {
    let deep: unknown = { temperature: 1 };
    for (let i = 0; i < 100_000; i++) deep = { next: deep };
    assert.equal(codeOf(deep), 'TOO_DEEP');
    const cyclic: Record<string, unknown> = { temperature: 1 };
    cyclic.self = cyclic;
    assert.equal(codeOf(cyclic), 'TOO_DEEP');
    // 2^30 paths through 30 shared levels: the value budget stops the walk.
    let shared: Record<string, unknown> = { temperature: 1 };
    for (let i = 0; i < 30; i++) shared = { a: shared, b: shared, temperature: 1 };
    assert.equal(codeOf(shared), 'TOO_LARGE');
    const wide = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`f${i}`, i]));
    assert.equal(codeOf({ temperature: 1, wide }), 'TOO_LARGE');
    assert.equal(codeOf({ temperature: 1, when: new Date() }), 'PARSE');
  });

  it('checks the depth of a short text in the walk and scans a long one before parsing', () => {
    const limits = { ...DEFAULT_LIMITS, maxDepth: 3 };
    // 47 characters: parsed, then refused by the structure walk with the path of the too-deep value.
    const short = run('{"temperature":1,"a":{"b":{"c":{"d":1}}}}', { limits });
    assert.equal(short.rejected[0].rejection.code, 'TOO_DEEP');
    assert.deepEqual(short.rejected[0].rejection.details, { path: '/a/b/c', limit: 3 });
    // Over DEPTH_SCAN_FROM (1024 characters): refused by the scan, with the bracket's position.
    const long = run(`{"temperature":1,"pad":"${'x'.repeat(1100)}","a":{"b":{"c":{"d":1}}}}`, { limits });
    assert.equal(long.rejected[0].rejection.code, 'TOO_DEEP');
    assert.deepEqual(long.rejected[0].rejection.details, { limit: 3, position: 1140 });
  });

  it('walks own keys only: a null-prototype object passes, a class instance does not', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { temperature: 3 });
    assert.deepEqual(run(bare).accepted[0].fields, { temperature: 3 });
    const derived = Object.create({ temperature: 4 }) as Record<string, unknown>;
    assert.equal(codeOf(derived), 'PARSE');
    const limits = { ...DEFAULT_LIMITS, maxKeys: 3 };
    assert.equal(
      run('{"temperature":1,"a":1,"b":2,"c":3,"d":4}', { limits }).rejected[0].rejection.reason,
      'the reading has 5 properties, more than the limit of 3',
    );
  });

  it('refuses prototype-poisoning keys and keeps harmless ones', () => {
    assert.equal(codeOf('{"temperature":1,"__proto__":{"polluted":1}}'), 'FORBIDDEN_KEY');
    assert.equal(
      codeOf('{"temperature":1,"x":{"constructor":{"prototype":{"polluted":1}}}}'),
      'FORBIDDEN_KEY',
    );
    assert.equal(run('{"temperature":1,"constructor":"ok","prototype":2}').accepted.length, 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('refuses numbers JSON cannot carry faithfully', () => {
    assert.equal(codeOf('{"temperature":1e400}'), 'NUMBER');
    assert.equal(codeOf('{"temperature":-1e400}'), 'NUMBER');
    assert.equal(codeOf('{"temperature":9007199254740993}'), 'NUMBER');
    assert.equal(codeOf({ temperature: NaN }), 'NUMBER');
    assert.equal(codeOf({ temperature: 10n }), 'NUMBER');
    assert.equal(
      run('{"temperature":9007199254740991}', { schema: compileReadingSchema(true) }).accepted.length,
      1,
    );
  });

  it('refuses strings and names with unpaired surrogates, which UTF-8 cannot carry', () => {
    assert.equal(codeOf('{"temperature":1,"note":"\\ud800"}'), 'ENCODING');
    assert.equal(codeOf('{"temperature":1,"\\udc00":2}'), 'ENCODING');
    assert.equal(codeOf(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), 'PARSE');
  });

  it('says where a parse error is', () => {
    const v = run('{\n  "temperature": 21.5,\n  "humidity": }');
    assert.equal(v.rejected[0].rejection.code, 'PARSE');
    assert.match(v.rejected[0].rejection.reason, /line 3 column 15 \(position 39\)/);
    assert.deepEqual(v.rejected[0].rejection.details, { position: 39, line: 3, column: 15 });
    assert.equal(locateJsonError('[1,2'), 4);
    assert.equal(locateJsonError('[01]'), 2);
    assert.equal(locateJsonError('{"a":"b\\x"}'), 7);
    assert.equal(locateJsonError('{"a":[true,false,null,{"b":-1.5e3}]}'), -1);
    assert.equal(codeOf(''), 'PARSE');
    assert.equal(codeOf(null), 'PARSE');
  });

  it('checks id', () => {
    assert.equal(codeOf('{"temperature":1,"id":7}'), 'ID');
    assert.equal(codeOf('{"temperature":1,"id":""}'), 'ID');
    assert.equal(codeOf(JSON.stringify({ temperature: 1, id: 'x'.repeat(129) })), 'ID');
  });

  it('passes a re-send on at the time of its first copy (by id, or by ts and identical values); refuses a clash', () => {
    const duplicates = new DuplicateWindow(100, 100);
    const ctx = { deviceId: 'd1', duplicates };
    const a = `{"ts":${now - 10},"temperature":1}`;
    assert.equal(run(a, ctx).accepted[0].timestamp, now - 10);
    assert.deepEqual(accepted(a, ctx), [now - 10, 'd1:' + String(now - 10)]);
    // Other values at the same ts would be merged into the first point by InfluxDB: refused, not merged.
    const other = run(`{"ts":${now - 10},"humidity":1,"temperature":2}`, ctx);
    assert.equal(other.rejected[0].rejection.code, 'DUPLICATE_TS');
    assert.match(other.rejected[0].rejection.reason, /merge/);
    assert.equal(codeOf(`{"ts":${now - 10},"id":"new","temperature":3}`, ctx), 'DUPLICATE_TS');
    assert.equal(run(a, { ...ctx, deviceId: 'd2' }).accepted.length, 1);
    // An id re-sent with the same values is the same reading; with other values or another ts it is a clash.
    assert.equal(run(`{"id":"m1","ts":${now - 20},"temperature":1}`, ctx).accepted.length, 1);
    assert.deepEqual(accepted(`{"temperature":1,"ts":${now - 20},"id":"m1"}`, ctx), [now - 20, 'm1']);
    const again = run(`{"id":"m1","ts":${now - 20},"temperature":5}`, ctx);
    assert.equal(
      again.rejected[0].rejection.reason,
      'reading id "m1" was already accepted from this device for another reading',
    );
    assert.equal(again.rejected[0].rejection.code, 'DUPLICATE_ID');
    assert.equal(codeOf(`{"id":"m1","ts":${now - 21},"temperature":1}`, ctx), 'DUPLICATE_ID');
    // Without its ts but with the same values it is still that point: written again at the first copy's time.
    assert.deepEqual(accepted(`{"id":"m1","temperature":1}`, ctx), [now - 20, 'm1']);
    // Without ts or id there is nothing to recognise a redelivery by.
    assert.equal(run('{"temperature":1}', ctx).accepted.length, 1);
    assert.equal(run('{"temperature":1}', ctx).accepted.length, 1);
    // Re-sends inside one batch too: both pass, at one time, as one point.
    const batch = run(
      JSON.stringify([
        { id: 'b', ts: now - 30, temperature: 1 },
        { id: 'b', ts: now - 30, temperature: 1 },
        { id: 'b', ts: now - 30, temperature: 2 },
      ]),
      ctx,
    );
    assert.deepEqual(
      batch.accepted.map((r) => [r.index, r.timestamp, r.messageId]),
      [
        [0, now - 30, 'b'],
        [1, now - 30, 'b'],
      ],
    );
    assert.deepEqual(
      batch.rejected.map((r) => [r.index, r.rejection.code]),
      [[2, 'DUPLICATE_ID']],
    );
  });

  it('writes a re-send of a reading without ts at the time its first copy got from the clock', () => {
    const clock = new ReadingClock();
    const ctx = { deviceId: 'd1', duplicates: new DuplicateWindow(100, 100), clock };
    const first = run('{"id":"x1","temperature":1}', ctx).accepted[0];
    // Two more readings in the same millisecond: the clock moves on by microseconds.
    assert.equal(run('{"id":"x2","temperature":2}', ctx).accepted[0].timestamp, now + 0.001);
    assert.equal(run('{"temperature":3}', ctx).accepted[0].timestamp, now + 0.002);
    // Later, the first copy could not be made durable and the device sends it again.
    const resent = run('{"id":"x1","temperature":1}', { ...ctx, now: now + 5000 }).accepted[0];
    assert.deepEqual([resent.timestamp, resent.messageId], [first.timestamp, 'x1']);
    assert.equal(first.timestamp, now);
    assert.equal(run('{"temperature":4}', { ...ctx, now: now + 5000 }).accepted[0].timestamp, now + 5000);
  });

  it('drops a re-send only when its first copy is known stored; passes it on while failed, timed out or pending', () => {
    const ledger = new AckLedger(() => 0, 0);
    const owner = { settled: () => undefined };
    const ctx = { deviceId: 'd1', duplicates: new DuplicateWindow(100, 100), acks: ledger };
    /** One publication with a held acknowledgement, as a source sends it. */
    const send = (payload: string) => {
      const ackId = ledger.hold(owner, 1000);
      return { ackId, verdict: run(payload, { ...ctx, ackId }) };
    };
    const withTs = `{"ts":${now - 10},"temperature":1}`;
    const withId = '{"id":"k1","temperature":2}';
    const firstTs = send(withTs);
    const firstId = send(withId);
    const idTime = firstId.verdict.accepted[0].timestamp;
    // Pending: nothing is known yet, so the re-send is written too (the same point).
    assert.equal(send(withTs).verdict.accepted[0].timestamp, now - 10);
    // Failed (spool full): the re-send must be stored, at the first copy's time.
    ledger.settle(firstTs.ackId, 'failed');
    ledger.settle(firstId.ackId, 'failed');
    assert.equal(send(withTs).verdict.accepted[0].timestamp, now - 10);
    assert.deepEqual(
      [send(withId).verdict.accepted[0].timestamp, send(withId).verdict.accepted[0].messageId],
      [idTime, 'k1'],
    );
    // Timed out: not known to be stored either.
    const late = send(`{"ts":${now - 20},"temperature":3}`);
    ledger.expire(1000);
    assert.equal(send(`{"ts":${now - 20},"temperature":3}`).verdict.accepted.length, 1);
    // Stored: the reading is durable, so its re-send is dropped, with a reason, and acknowledged as such.
    const kept = send(`{"ts":${now - 30},"temperature":4}`);
    const keptId = send('{"id":"k2","temperature":5}');
    ledger.settle([kept.ackId, keptId.ackId], 'stored');
    const again = send(`{"ts":${now - 30},"temperature":4}`).verdict.rejected[0].rejection;
    assert.deepEqual(again, {
      stage: 'validate',
      code: 'DUPLICATE',
      reason: `an identical reading with ts ${now - 30} from this device is already stored`,
      details: { ts: now - 30 },
    });
    assert.equal(
      send('{"id":"k2","temperature":5}').verdict.rejected[0].rejection.reason,
      'reading id "k2" from this device is already stored',
    );
    // A re-send that was passed on and then stored stands for the reading from then on.
    const third = send(withTs);
    ledger.settle(third.ackId, 'stored');
    assert.equal(send(withTs).verdict.rejected[0].rejection.code, 'DUPLICATE');
    // Other values at a stored reading's ts or id are still a clash.
    assert.equal(codeOf(`{"ts":${now - 30},"temperature":6}`, ctx), 'DUPLICATE_TS');
    assert.equal(codeOf('{"id":"k2","temperature":6}', ctx), 'DUPLICATE_ID');
    assert.equal(late.verdict.accepted.length, 1);
  });

  it('counts re-sends in iotb_duplicates_total{stage="validate"}', async () => {
    const before = await duplicatesCounted();
    const ctx = { deviceId: 'count-1', duplicates: new DuplicateWindow(10, 10), count: true };
    const r = `{"ts":${now - 10},"temperature":1}`;
    run(r, ctx);
    run(r, ctx);
    run(r, ctx);
    assert.equal((await duplicatesCounted()) - before, 2);
  });

  it('compares values only for readings that share a ts, whatever happens to the accepted payload', () => {
    const ctx = { deviceId: 'd1', duplicates: new DuplicateWindow(100, 100) };
    const ts = now - 10;
    const first = run(`{"ts":${ts},"temperature":1,"mode":"eco"}`, ctx);
    assert.equal(first.accepted.length, 1);
    // Downstream edits of the accepted payload must not change what counts as a repetition.
    first.accepted[0].fields.temperature = 99;
    assert.equal(outcome(`{"ts":${ts},"mode":"eco","temperature":1}`, ctx), 'resent');
    assert.equal(codeOf(`{"ts":${ts},"temperature":99,"mode":"eco"}`, ctx), 'DUPLICATE_TS');
    // An ISO ts names the same instant as its milliseconds.
    assert.equal(
      outcome(`{"ts":"${new Date(ts).toISOString()}","temperature":1,"mode":"eco"}`, ctx),
      'resent',
    );
    // Nested and long values are compared as text.
    const nested = `{"ts":${ts + 1},"temperature":5,"pos":{"lat":1,"lon":2},"note":"${'n'.repeat(200)}"}`;
    assert.equal(outcome(nested, ctx), 'new');
    assert.equal(outcome(nested, ctx), 'resent');
    assert.equal(codeOf(nested.replace('"lon":2', '"lon":3'), ctx), 'DUPLICATE_TS');
  });

  it('forgets readings one at a time, oldest first', () => {
    const ctx = { deviceId: 'd1', duplicates: new DuplicateWindow(2, 10) };
    const reading = (t: number) => `{"ts":${now - 10 + t},"temperature":${t}}`;
    const other = (t: number) => `{"ts":${now - 10 + t},"temperature":${t + 100}}`;
    assert.equal(run(reading(1), ctx).accepted.length, 1);
    assert.equal(run(reading(2), ctx).accepted.length, 1);
    assert.equal(run(reading(3), ctx).accepted.length, 1, 'evicts reading 1');
    assert.equal(codeOf(other(3), ctx), 'DUPLICATE_TS');
    assert.equal(codeOf(other(2), ctx), 'DUPLICATE_TS');
    assert.equal(run(other(1), ctx).accepted.length, 1, 'reading 1 was forgotten');
  });

  it('recognises a repetition that arrives after newer readings, and one whose values were coerced', () => {
    const ctx = { deviceId: 'd1', duplicates: new DuplicateWindow(100, 100) };
    const reading = (ts: number, t: number | string) => `{"ts":${ts},"temperature":${JSON.stringify(t)}}`;
    for (let i = 10; i > 0; i--) assert.equal(run(reading(now - i * 1000, i), ctx).accepted.length, 1);
    // Older than the newest reading: the ring is searched, not just the newest ts.
    assert.equal(outcome(reading(now - 5000, 5), ctx), 'resent');
    assert.equal(codeOf(reading(now - 5000, 6), ctx), 'DUPLICATE_TS', 'same ts, other value');
    // With coercion the accepted payload holds 21.5 while the device sent "21.5": its retry is still one.
    const coercing = compileReadingSchema(
      { type: 'object', properties: { temperature: { type: 'number' } } },
      {
        coerce: true,
        useDefaults: false,
        unknown: 'schema',
        allErrors: false,
      },
    );
    const c = { ...ctx, schema: coercing, deviceId: 'd2' };
    const first = run(reading(now - 100, '21.5'), c);
    assert.deepEqual(first.accepted[0].fields, { temperature: 21.5 });
    assert.equal(outcome(reading(now - 100, '21.5'), c), 'resent');
    assert.equal(codeOf(reading(now - 100, 21.5), c), 'DUPLICATE_TS', 'the device sent other text');
  });

  it('hands back a refused batch reading as the device sent it, even when coercion touched it first', () => {
    const coercing = compileReadingSchema(
      { type: 'object', properties: { temperature: { type: 'number' }, humidity: { type: 'number' } } },
      { coerce: true, useDefaults: false, unknown: 'schema', allErrors: false },
    );
    const v = run('[{"temperature":"21.5"},{"temperature":"22.5","humidity":"wet"}]', { schema: coercing });
    assert.deepEqual(v.accepted[0].fields, { temperature: 21.5 });
    assert.deepEqual(v.rejected[0].value, { temperature: '22.5', humidity: 'wet' });
    assert.throws(() => new DuplicateWindow(0, 10), RangeError);
  });

  it('forgets ids and readings alike as the ring turns over', () => {
    const ctx = { deviceId: 'd1', duplicates: new DuplicateWindow(2, 10) };
    assert.equal(run('{"id":"a","temperature":1}', ctx).accepted.length, 1);
    assert.equal(run(`{"ts":${now - 10},"temperature":1}`, ctx).accepted.length, 1);
    assert.equal(codeOf('{"id":"a","temperature":2}', ctx), 'DUPLICATE_ID');
    assert.equal(run(`{"ts":${now - 5},"temperature":1}`, ctx).accepted.length, 1, 'evicts id a');
    assert.equal(run('{"id":"a","temperature":2}', ctx).accepted.length, 1, 'id a was forgotten');
  });

  it('keeps the duplicate window bounded per device and in devices', () => {
    const w = new DuplicateWindow(3, 2);
    const r = { v: 1 };
    const seen = (device: string, id: string): boolean => {
      if (w.lookup(device, undefined, id, r) === 'resent') return true;
      w.remember(device, now, id, '{"v":1}');
      return false;
    };
    for (const k of ['a', 'b', 'c', 'd']) assert.equal(seen('d1', k), false);
    assert.equal(seen('d1', 'd'), true);
    assert.equal(seen('d1', 'a'), false, 'oldest key forgotten');
    seen('d2', 'x');
    seen('d1', 'e');
    seen('d3', 'y');
    assert.equal(w.size, 2);
    assert.equal(seen('d2', 'x'), false, 'least recently seen device forgotten');
    assert.equal(seen('d1', 'long'.repeat(100)), false);
    assert.equal(seen('d1', 'long'.repeat(100)), true);
  });

  it('refuses every reading with NO_SCHEMA when there is no schema', () => {
    const v = run('{"temperature":1}', {
      schema: undefined,
      noSchema: { code: 'NO_SCHEMA', reason: 'device type "x" has no schema' },
    });
    assert.deepEqual(v.rejected[0].rejection, {
      stage: 'validate',
      code: 'NO_SCHEMA',
      reason: 'device type "x" has no schema',
    });
  });

  it('counts refusals in iotb_rejected_total unless asked not to', async () => {
    const read = async () =>
      (await metricsRegistry.getSingleMetric('iotb_rejected_total')!.get()).values.find(
        (x) => x.labels.stage === 'validate' && x.labels.code === 'EMPTY',
      )?.value ?? 0;
    const before = await read();
    validatePayload('[]', { schema: thermo, now });
    assert.equal(await read(), before + 1);
    validatePayload('[]', { schema: thermo, now, count: false });
    assert.equal(await read(), before + 1);
  });

  it('gives readings without ts times strictly increasing per device, in whole ms unless a device repeats one', () => {
    const clock = new ReadingClock();
    const times = (deviceId: string, payload: string) =>
      run(payload, { deviceId, clock }).accepted.map((a) => a.timestamp);
    const single = [1, 2, 3].flatMap(() => times('d1', '{"temperature":1}'));
    const batch = times('d1', JSON.stringify(Array.from({ length: 1000 }, () => ({ temperature: 1 }))));
    const all = [...single, ...batch];
    assert.equal(all[0], now, 'the first reading of the millisecond keeps the receive time');
    for (let i = 1; i < all.length; i++) assert.ok(all[i] > all[i - 1], `time ${i} after time ${i - 1}`);
    // Each is a distinct nanosecond time for the writer, not only a distinct double.
    assert.equal(new Set(all.map((t) => toTimeNs(t))).size, all.length);
    assert.equal(all[1], now + 0.001);
    // Another device is not slowed by d1's readings; d1 is back on whole ms once the clock passes them.
    assert.deepEqual(times('d2', '{"temperature":1}'), [now]);
    assert.deepEqual(
      run('{"temperature":1}', { deviceId: 'd1', clock, now: now + 5 }).accepted.map((a) => a.timestamp),
      [now + 5],
    );
    // Readings with ts keep their own.
    assert.deepEqual(times('d1', `{"ts":${now - 10},"temperature":1}`), [now - 10]);
  });

  it('keeps the reading clock bounded without ever repeating a time', () => {
    const clock = new ReadingClock(10);
    for (let i = 0; i < 1000; i++) clock.next(`dev-${i}`, now + i);
    assert.ok(clock.size <= 10, `${clock.size} devices remembered`);
    // More devices than the bound within one millisecond: the map is cleared, the floor keeps each device's
    // times increasing.
    const seen: number[] = [];
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < 25; i++) seen.push(clock.next(`burst-${i}`, now + 2000));
    for (let i = 0; i < 25; i++) assert.ok(seen[50 + i] > seen[25 + i] && seen[25 + i] > seen[i]);
    assert.ok(clock.size <= 10);
  });

  it('refuses a field named like a tag (device, type, configured ones), counted, with its reason', async () => {
    const loose = compileReadingSchema({ type: 'object' });
    const read = async () =>
      (await metricsRegistry.getSingleMetric('iotb_rejected_total')!.get()).values.find(
        (x) => x.labels.stage === 'validate' && x.labels.code === 'TAG_NAME',
      )?.value ?? 0;
    const before = await read();
    const v = validatePayload('{"device":"v1","type":"sensor","temperature":99.5}', {
      schema: loose,
      now,
      deviceId: 'd1',
    });
    assert.equal(v.accepted.length, 0);
    assert.equal(v.rejected[0].rejection.code, 'TAG_NAME');
    assert.match(v.rejected[0].rejection.reason, /field "device" has the name of a tag/);
    assert.equal(await read(), before + 1);
    assert.equal(codeOf('{"type":"x","v":1}', { schema: loose }), 'TAG_NAME');
    const site = { schema: loose, tagKeys: new Set(['device', 'type', 'site']) };
    assert.equal(codeOf('{"site":"x","v":1}', site), 'TAG_NAME');
    assert.equal(run('{"site":"x","v":1}', { schema: loose }).accepted.length, 1);
  });
});

describe('decimal', () => {
  it('writes a time in ms as String() does', () => {
    const cases = [0, 1, 9_999_999, 10_000_000, 10_000_001, 1_795_900_000_000, 1_795_900_000_007];
    cases.push(1_795_929_244_235, 999_999_999_999_999, 1e16, -5, 1.5, 1e21);
    for (let i = 0; i < 1000; i++) cases.push(Math.floor(Math.random() * 1e15));
    for (const ms of cases) assert.equal(decimal(ms), String(ms));
  });
});

describe('readTimestamp', () => {
  const ok = (ts: unknown) => readTimestamp(ts, now, DEFAULT_WINDOW);
  const reason = (ts: unknown) => {
    const r = ok(ts);
    assert.equal(r.ok, false, String(ts));
    return r.ok ? '' : r.refusal.reason;
  };

  it('accepts ms numbers and ISO-8601 with a zone', () => {
    assert.deepEqual(ok(now - 1), { ok: true, ms: now - 1 });
    assert.deepEqual(ok('2026-06-01T11:59:00Z'), { ok: true, ms: now - 60_000 });
    assert.deepEqual(ok('2026-06-01T13:59:00.250+02:00'), { ok: true, ms: now - 59_750 });
    assert.deepEqual(ok('2026-06-01T11:59:00.123456789Z'), { ok: true, ms: now - 60_000 + 123 });
  });

  it('refuses seconds, micro- and nanoseconds instead of storing them in 1970 or the far future', () => {
    assert.match(reason(Math.floor(now / 1000)), /looks like seconds/);
    assert.match(reason(now * 1000), /looks like microseconds or nanoseconds/);
    assert.match(reason(now * 1_000_000), /looks like microseconds or nanoseconds/);
    assert.match(reason(now + 0.5), /whole milliseconds/);
    assert.match(reason(-1), /looks like seconds/);
  });

  it('refuses ISO strings without zone and things that are not times', () => {
    assert.match(reason('2026-06-01T11:59:00'), /with a zone/);
    assert.match(reason('yesterday'), /not an ISO-8601/);
    assert.match(reason(true), /got boolean/);
    assert.match(reason('2026-13-45T11:59:00Z'), /not an ISO-8601/);
  });

  it('refuses times outside the window (default +5 minutes / -7 days) and says by how much', () => {
    assert.equal(ok(now + 5 * 60_000).ok, true);
    assert.equal(
      reason(now + 12 * 60_000),
      'ts 2026-06-01T12:12:00.000Z is 12 minutes in the future (at most 5 minutes allowed)',
    );
    assert.equal(ok(now - 7 * 86_400_000).ok, true);
    assert.equal(
      reason(now - 9 * 86_400_000),
      'ts 2026-05-23T12:00:00.000Z is 9 days old (at most 7 days allowed)',
    );
    assert.equal(
      readTimestamp(now - 9 * 86_400_000, now, { maxFutureMs: 0, maxAgeMs: 10 * 86_400_000 }).ok,
      true,
    );
  });
});

describe('compileReadingSchema', () => {
  it('compiles once: the same schema and options give the same validator', () => {
    const s = { type: 'object', properties: { x: { type: 'number' } } };
    assert.equal(compileReadingSchema(s), compileReadingSchema(JSON.stringify(s)));
    assert.notEqual(
      compileReadingSchema(s),
      compileReadingSchema(s, { coerce: true, useDefaults: false, unknown: 'schema', allErrors: false }),
    );
  });

  it('says why a schema is unusable', () => {
    assert.throws(
      () => compileReadingSchema('{"type": "object",}'),
      (e: Error) => e instanceof SchemaError && /not valid JSON.*position 18/.test(e.message),
    );
    assert.throws(() => compileReadingSchema({ type: 'objekt' }), /schema is invalid: .*type/);
    assert.throws(() => compileReadingSchema({ type: 'object', maximun: 5 }), /unknown keyword: "maximun"/);
    assert.throws(() => compileReadingSchema({ $ref: '#/$defs/missing' }), /can't resolve reference/);
    assert.throws(() => compileReadingSchema('[]'), /must be a JSON object/);
    assert.throws(
      () => compileReadingSchema({ properties: { a: { maximum: { $data: '1/b' } } } }),
      /schema is invalid/,
    );
  });

  it('coerces, fills defaults, strips or rejects unknown fields as configured', () => {
    const schema = {
      type: 'object',
      properties: { t: { type: 'number' }, unit: { type: 'string', default: 'C' } },
      required: ['t'],
    };
    const plain = compileReadingSchema(schema);
    assert.equal(plain.check({ t: '21.5' })?.reason, 't must be a number (got "21.5")');
    const coerced = { t: '21.5' } as Record<string, unknown>;
    assert.equal(
      compileReadingSchema(schema, {
        coerce: true,
        useDefaults: true,
        unknown: 'schema',
        allErrors: false,
      }).check(coerced),
      undefined,
    );
    assert.deepEqual(coerced, { t: 21.5, unit: 'C' });
    const extra = { t: 1, junk: true } as Record<string, unknown>;
    assert.equal(plain.check(extra), undefined);
    assert.equal(
      compileReadingSchema(schema, {
        coerce: false,
        useDefaults: false,
        unknown: 'strip',
        allErrors: false,
      }).check(extra),
      undefined,
    );
    assert.deepEqual(extra, { t: 1 });
    const rejected = compileReadingSchema(schema, {
      coerce: false,
      useDefaults: false,
      unknown: 'reject',
      allErrors: false,
    }).check({ t: 1, junk: true });
    assert.equal(rejected?.reason, 'junk is not a known field');
    assert.deepEqual((rejected?.details as any).violations[0], {
      path: '/junk',
      message: 'junk is not a known field',
      expected: 'absent',
      actual: true,
    });
  });

  it('reports the first violation by default and all of them when asked', () => {
    const schema = { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } };
    assert.equal(
      compileReadingSchema(schema).check({ a: 'x', b: 'y' })?.reason,
      'a must be a number (got "x")',
    );
    assert.equal(
      compileReadingSchema(schema, {
        coerce: false,
        useDefaults: false,
        unknown: 'schema',
        allErrors: true,
      }).check({ a: 'x', b: 'y' })?.reason,
      'a must be a number (got "x"); b must be a number (got "y")',
    );
  });

  it('describes formats, patterns, lengths and nested paths', () => {
    const s = compileReadingSchema({
      type: 'object',
      properties: {
        at: { type: 'string', format: 'date-time' },
        code: { type: 'string', pattern: '^[A-Z]{3}$', maxLength: 3 },
        pos: { type: 'object', properties: { lat: { type: 'number', maximum: 90 } } },
      },
    });
    assert.equal(s.check({ at: 'noon' })?.reason, 'at must be a valid date-time (got "noon")');
    assert.equal(s.check({ code: 'ab' })?.reason, 'code must match the pattern ^[A-Z]{3}$ (got "ab")');
    assert.equal(s.check({ code: 'ABCD' })?.reason, 'code must be at most 3 characters long (got 4)');
    const nested = s.check({ pos: { lat: 91 } });
    assert.equal(nested?.reason, 'pos.lat must be <= 90 (got 91)');
    assert.equal((nested?.details as any).violations[0].path, '/pos/lat');
  });
});
