import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Transition } from '../../nodes/lib/alarms/alarm';
import {
  compileCondition,
  ConditionError,
  FALSE,
  formatCondition,
  parseCondition,
  TRUE,
  UNKNOWN,
} from '../../nodes/lib/alarms/condition';
import { AlarmEngine } from '../../nodes/lib/alarms/engine';
import { compileRules, RuleError, type RuleInput } from '../../nodes/lib/alarms/rules';
import { FileAlarmStore } from '../../nodes/lib/alarms/store';
import { tempDir } from '../support/servers';

const S = 1000;
const engineFor = (...rules: Partial<RuleInput>[]) => new AlarmEngine(compileRules(rules));
/** Copies the engine's reused transition array so a test can keep it. */
const feed = (
  e: AlarmEngine,
  device: string,
  ts: number,
  fields: Record<string, unknown>,
  type = 'freezer',
) => [...e.reading(device, type, ts, fields)];
const kinds = (ts: readonly Transition[]) => ts.map((t) => `${t.transition}:${t.to}`);

describe('alarm conditions', () => {
  it('parses comparisons joined by and/or, with and binding tighter, and prints them back', () => {
    const c = parseCondition('temperature > -10 and door == "open" or alarm == true');
    assert.deepEqual(c, {
      or: [
        {
          and: [
            { field: 'temperature', op: '>', value: -10 },
            { field: 'door', op: '==', value: 'open' },
          ],
        },
        { field: 'alarm', op: '==', value: true },
      ],
    });
    assert.equal(formatCondition(c), '(temperature > -10 and door == "open") or alarm == true');
    assert.deepEqual(
      parseCondition(formatCondition(parseCondition('a < 1 and (b >= 2 or c != 3)'))),
      parseCondition('a < 1 and (b >= 2 or c != 3)'),
    );
  });

  it('evaluates with three values: a reading without the field decides nothing', () => {
    const c = compileCondition('t > 5 and h < 80');
    assert.equal(c.test({ t: 6, h: 50 }), TRUE);
    assert.equal(c.test({ t: 4, h: 50 }), FALSE);
    assert.equal(c.test({ t: 4 }), FALSE, 'false wins an and');
    assert.equal(c.test({ t: 6 }), UNKNOWN);
    assert.equal(c.test({ t: '6', h: 50 }), UNKNOWN, 'text is not a number');
    assert.deepEqual(c.fields, ['t', 'h']);
  });

  it('refuses code and malformed conditions with a message that says where', () => {
    const refused = (input: unknown, pattern: RegExp) =>
      assert.throws(
        () => compileCondition(input),
        (err: Error) => err instanceof ConditionError && pattern.test(err.message),
      );
    refused('process.exit()', /expected an operator/);
    refused('t > ', /expected a number.*at the end/);
    refused('t > 5 and', /field name at the end/);
    refused('t > 5 t < 3', /expected 'and', 'or' or the end at position 7/);
    refused('(t > 5', /expected '\)'/);
    refused('t > "hot"', /compares numbers/);
    refused('t ~ 5', /unexpected '~' at position 3/);
    refused('', /empty/);
    refused({ field: 'constructor', op: '>', value: 1, and: 3 }, /non-empty list/);
    refused({ field: 't', op: '=>', value: 1 }, /not an operator/);
    refused({ field: 't', op: '>', value: {} }, /must be a number/);
    refused(Array.from({ length: 33 }, (_, i) => `f${i} > 0`).join(' or '), /more than 32/);
    assert.throws(
      () => compileCondition('rate < 0 and x > 1', ['rate']),
      /'x' is not available here; use rate/,
    );
  });
});

describe('alarm rules', () => {
  it('validates at deploy with the rule and the property at fault', () => {
    const refused = (rules: unknown, pattern: RegExp) =>
      assert.throws(
        () => compileRules(rules),
        (err: Error) => err instanceof RuleError && pattern.test(err.message),
      );
    refused([{ name: 'a b', kind: 'threshold' }], /rule 1: name must be/);
    refused([{ name: 'a', kind: 'nope' }], /rule 'a': kind must be one of/);
    refused([{ name: 'a', kind: 'threshold' }], /rule 'a': a threshold rule needs a raise condition/);
    refused([{ name: 'a', kind: 'threshold', raise: 't >' }], /rule 'a': raise condition: expected a number/);
    refused([{ name: 'a', kind: 'threshold', raise: 't > 1', severity: 'bad' }], /severity must be one of/);
    refused(
      [{ name: 'a', kind: 'threshold', raise: 't > 1', raiseForS: -1 }],
      /raiseForS must be a number of seconds/,
    );
    refused([{ name: 'a', kind: 'absence' }], /silentS \(seconds\) is required/);
    refused([{ name: 'a', kind: 'rate', raise: 'rate < -1', windowS: 60 }], /needs the field/);
    refused(
      [{ name: 'a', kind: 'rate', field: 'b', raise: 'b < -1', windowS: 60 }],
      /'b' is not available here; use rate/,
    );
    refused([{ name: 'a', kind: 'fleet', raise: 'share > 0.1', silentS: 60 }], /needs a device type/);
    refused(
      [{ name: 'a', kind: 'fleet', deviceType: 't', raise: 'share > 0.1' }],
      /counts devices that meet/,
    );
    refused(
      [
        { name: 'a', kind: 'absence', silentS: 1 },
        { name: 'a', kind: 'absence', silentS: 2 },
      ],
      /the name 'a' is used twice/,
    );
    const [r] = compileRules([
      { name: 'warm', kind: 'threshold', raise: 'temperature > -10', raiseForS: 300 },
    ]);
    assert.equal(r.summary, 'temperature > -10 for 300 s');
    assert.equal(r.severity, 'major');
  });
});

describe('alarm engine: rule kinds', () => {
  it('threshold with a duration: raises once the condition held N seconds, not on a shorter excursion', () => {
    const e = engineFor({
      name: 'warm',
      kind: 'threshold',
      raise: 'temperature > -10',
      clear: 'temperature < -12',
      raiseForS: 300,
    });
    assert.deepEqual(feed(e, 'f1', 0, { temperature: -5 }), []);
    assert.deepEqual(feed(e, 'f1', 200 * S, { temperature: -4 }), []);
    assert.deepEqual(feed(e, 'f1', 250 * S, { temperature: -15 }), [], 'the excursion ended after 250 s');
    assert.deepEqual(feed(e, 'f1', 260 * S, { temperature: -5 }), []);
    assert.deepEqual(feed(e, 'f1', 500 * S, { temperature: -5 }), []);
    const raised = feed(e, 'f1', 560 * S, { temperature: -3 });
    assert.deepEqual(kinds(raised), ['raised:ACTIVE_UNACK']);
    const a = raised[0].alarm;
    assert.equal(a.startTs, 560 * S);
    assert.deepEqual(a.raiseValues, { temperature: -3 });
    assert.equal(a.summary, 'temperature > -10 for 300 s');
  });

  it('threshold with consecutive readings for raise and for clear', () => {
    const e = engineFor({
      name: 'hot',
      kind: 'threshold',
      raise: 't > 30',
      raiseForReadings: 3,
      clearForReadings: 2,
    });
    assert.deepEqual(feed(e, 'd', 1, { t: 31 }), []);
    assert.deepEqual(feed(e, 'd', 2, { t: 31 }), []);
    assert.deepEqual(feed(e, 'd', 3, { t: 20 }), []);
    assert.deepEqual(feed(e, 'd', 4, { t: 31 }), []);
    assert.deepEqual(feed(e, 'd', 5, { t: 32 }), []);
    assert.deepEqual(kinds(feed(e, 'd', 6, { t: 33 })), ['raised:ACTIVE_UNACK']);
    assert.deepEqual(feed(e, 'd', 7, { t: 20 }), []);
    assert.deepEqual(feed(e, 'd', 8, { humidity: 3 }), [], 'a reading without the field changes nothing');
    const cleared = feed(e, 'd', 9, { t: 21 });
    assert.deepEqual(kinds(cleared), ['cleared:CLEARED_UNACK']);
    assert.deepEqual(cleared[0].alarm.clearValues, { t: 21 });
    assert.equal(cleared[0].alarm.clearTs, 9);
  });

  it('threshold with a clear duration in seconds', () => {
    const e = engineFor({ name: 'hot', kind: 'threshold', raise: 't > 30', clear: 't < 25', clearForS: 60 });
    feed(e, 'd', 0, { t: 31 });
    assert.deepEqual(feed(e, 'd', 10 * S, { t: 20 }), []);
    assert.deepEqual(feed(e, 'd', 50 * S, { t: 27 }), [], 'back in the band: the clear wait starts over');
    assert.deepEqual(feed(e, 'd', 60 * S, { t: 20 }), []);
    assert.deepEqual(feed(e, 'd', 119 * S, { t: 20 }), []);
    assert.deepEqual(kinds(feed(e, 'd', 120 * S, { t: 20 })), ['cleared:CLEARED_UNACK']);
  });

  it('hysteresis: a signal crossing the raise threshold 100 times inside the band raises once', () => {
    const e = engineFor({
      name: 'warm',
      kind: 'threshold',
      raise: 'temperature > -10',
      clear: 'temperature < -12',
    });
    const all: Transition[] = [];
    for (let i = 0; i < 200; i++) all.push(...feed(e, 'f', i * S, { temperature: i % 2 ? -9.5 : -10.5 }));
    assert.deepEqual(kinds(all), ['raised:ACTIVE_UNACK']);
    assert.equal(e.get(all[0].alarm.id)?.count, 100, 'every new crossing counts on the one alarm');
    assert.equal(e.get(all[0].alarm.id)?.lastTs, 199 * S);
    assert.deepEqual(kinds(feed(e, 'f', 300 * S, { temperature: -12.5 })), ['cleared:CLEARED_UNACK']);
  });

  it('absence: raises for a silent device on tick, clears on its next reading', () => {
    const e = engineFor({ name: 'silent', kind: 'absence', silentS: 3600, severity: 'minor' });
    feed(e, 'a', 0, { t: 1 });
    feed(e, 'b', 1800 * S, { t: 1 });
    assert.deepEqual([...e.tick(3599 * S)], []);
    const raised = [...e.tick(3600 * S)];
    assert.deepEqual(
      raised.map((t) => [t.alarm.device, t.alarm.severity, t.to]),
      [['a', 'minor', 'ACTIVE_UNACK']],
    );
    assert.deepEqual([...e.tick(3700 * S)], [], 'not raised again while active');
    assert.deepEqual(kinds(feed(e, 'a', 3800 * S, { t: 2 })), ['cleared:CLEARED_UNACK']);
    assert.deepEqual(
      [...e.tick(5400 * S)].map((t) => t.alarm.device),
      ['b'],
    );
  });

  it('absence across a restart: last-seen times taken back, a device silent since before it is reported', () => {
    const rules = { name: 'silent', kind: 'absence' as const, silentS: 60 };
    const before = engineFor(rules);
    feed(before, 'a', 10 * S, { t: 1 });
    feed(before, 'b', 50 * S, { t: 1 });
    const saved = JSON.parse(JSON.stringify(before.lastSeen())) as Record<string, unknown>;
    assert.deepEqual(saved, { a: ['freezer', 10 * S], b: ['freezer', 50 * S] });
    const after = engineFor(rules);
    after.restoreLastSeen({ ...saved, junk: 'x' });
    feed(after, 'b', 100 * S, { t: 1 });
    assert.deepEqual(
      [...after.tick(120 * S)].map((t) => t.alarm.device),
      ['a'],
    );
  });

  it('rate: change per minute over a window (a draining battery)', () => {
    const e = engineFor({
      name: 'drain',
      kind: 'rate',
      field: 'battery',
      windowS: 600,
      raise: 'rate < -1',
      clear: 'rate > -0.2',
    });
    let out: Transition[] = [];
    // 0.5 %/min for 20 minutes: no alarm; then 2 %/min.
    let level = 100;
    for (let m = 0; m <= 20; m++) out.push(...feed(e, 'd', m * 60 * S, { battery: (level -= 0.5) }));
    assert.deepEqual(out, []);
    for (let m = 21; m <= 40 && out.length === 0; m++)
      out = feed(e, 'd', m * 60 * S, { battery: (level -= 2) });
    assert.deepEqual(kinds(out), ['raised:ACTIVE_UNACK']);
    assert.ok((out[0].alarm.raiseValues.rate as number) < -1);
    out = [];
    for (let m = 41; m <= 80 && out.length === 0; m++) out = feed(e, 'd', m * 60 * S, { battery: level });
    assert.deepEqual(kinds(out), ['cleared:CLEARED_UNACK']);
  });

  it('quality: share of flagged or rejected readings over a window, after a minimum of readings', () => {
    const e = engineFor({
      name: 'dq',
      kind: 'quality',
      windowS: 100,
      minReadings: 10,
      raise: 'share >= 0.2',
      clear: 'share < 0.05',
    });
    const out: Transition[] = [];
    for (let i = 0; i < 9; i++) out.push(...e.reading('d', 't', i * S, {}, true));
    assert.equal(out.length, 0, 'fewer than 10 readings decide nothing');
    out.push(...e.reading('d', 't', 9 * S, {}, true));
    assert.deepEqual(kinds(out), ['raised:ACTIVE_UNACK']);
    assert.deepEqual(out[0].alarm.raiseValues, { share: 1 });
    out.length = 0;
    // Good readings from then on: the bad ones slide out of the window.
    for (let i = 10; i < 400 && out.length === 0; i++) out.push(...e.reading('d', 't', i * S, {}, false));
    assert.deepEqual(kinds(out), ['cleared:CLEARED_UNACK']);
    assert.ok(out[0].at > 100 * S && out[0].at < 200 * S, `cleared at ${out[0].at}`);
  });

  it("fleet: share of a type's devices offline, and count of devices in a condition", () => {
    const e = engineFor(
      {
        name: 'offline',
        kind: 'fleet',
        deviceType: 'meter',
        silentS: 60,
        raise: 'share >= 0.1',
        clear: 'share < 0.05',
      },
      { name: 'hot', kind: 'fleet', deviceType: 'meter', member: 't > 50', raise: 'count >= 2' },
    );
    for (let d = 0; d < 20; d++) feed(e, `m${d}`, 0, { t: 20 }, 'meter');
    feed(e, 'other', 0, { t: 99 }, 'freezer');
    for (let d = 0; d < 18; d++) feed(e, `m${d}`, 50 * S, { t: d < 2 ? 60 : 20 }, 'meter');
    const raised = [...e.tick(61 * S)];
    assert.deepEqual(raised.map((t) => [t.alarm.device, t.alarm.rule, t.alarm.raiseValues]).sort(), [
      ['fleet:meter', 'hot', { count: 2 }],
      ['fleet:meter', 'offline', { share: 0.1 }],
    ]);
    feed(e, 'm18', 70 * S, { t: 20 }, 'meter');
    feed(e, 'm19', 70 * S, { t: 20 }, 'meter');
    assert.deepEqual(
      [...e.tick(71 * S)].map((t) => `${t.alarm.rule}:${t.to}`),
      ['offline:CLEARED_UNACK'],
    );
  });
});

describe('alarm engine: lifecycle', () => {
  const rule = {
    name: 'hot',
    kind: 'threshold' as const,
    raise: 't > 30',
    clear: 't < 25',
    severity: 'critical' as const,
  };

  it('ACTIVE_UNACK → ACTIVE_ACK → CLEARED_ACK, with ack time and user', () => {
    const e = engineFor(rule);
    const [raised] = feed(e, 'd', 10, { t: 31 });
    const acked = e.ack(raised.alarm.id, 'alice', 20);
    assert.ok('transition' in acked);
    assert.deepEqual(
      [acked.from, acked.to, acked.alarm.ackBy, acked.alarm.ackTs],
      ['ACTIVE_UNACK', 'ACTIVE_ACK', 'alice', 20],
    );
    assert.deepEqual(e.ack(raised.alarm.id, 'bob', 21), {
      code: 'ALREADY_ACKED',
      reason: 'alarm 1 was acknowledged by alice',
    });
    assert.deepEqual(kinds(feed(e, 'd', 30, { t: 20 })), ['cleared:CLEARED_ACK']);
    assert.deepEqual(e.list({ state: 'open' }), []);
    assert.equal(e.get(raised.alarm.id)?.state, 'CLEARED_ACK');
  });

  it('ACTIVE_UNACK → CLEARED_UNACK → CLEARED_ACK; a new raise while the old one waits for ack is a new alarm', () => {
    const e = engineFor(rule);
    const [first] = feed(e, 'd', 10, { t: 31 });
    feed(e, 'd', 20, { t: 20 });
    assert.equal(e.get(first.alarm.id)?.state, 'CLEARED_UNACK');
    const [second] = feed(e, 'd', 30, { t: 35 });
    assert.notEqual(second.alarm.id, first.alarm.id);
    assert.deepEqual(
      e.list({ state: 'open' }).map((a) => a.state),
      ['CLEARED_UNACK', 'ACTIVE_UNACK'],
    );
    const acked = e.ack(first.alarm.id, 'op', 40);
    assert.ok('transition' in acked && acked.to === 'CLEARED_ACK');
  });

  it('re-raise while active updates count, last value and last time instead of a second alarm', () => {
    const e = engineFor(rule);
    const [raised] = feed(e, 'd', 10, { t: 31 });
    assert.deepEqual(feed(e, 'd', 20, { t: 40 }), [], 'same episode');
    assert.deepEqual(feed(e, 'd', 30, { t: 28 }), [], 'inside the band');
    assert.deepEqual(feed(e, 'd', 40, { t: 45 }), [], 'a new episode');
    const a = e.get(raised.alarm.id)!;
    assert.deepEqual([a.count, a.lastTs, a.lastValues, a.raiseValues], [2, 40, { t: 45 }, { t: 31 }]);
    assert.ok(e.dirty);
    assert.equal(e.list().length, 1);
  });

  it('clear by hand: ACTIVE_ACK → CLEARED_ACK; the rule raises again only when its condition holds anew', () => {
    const e = engineFor({ ...rule, raiseForReadings: 2 });
    feed(e, 'd', 1, { t: 31 });
    const [raised] = feed(e, 'd', 2, { t: 31 });
    e.ack(raised.alarm.id, 'op', 3);
    const cleared = e.clear(raised.alarm.id, 'op', 4);
    assert.ok('transition' in cleared);
    assert.deepEqual(
      [cleared.from, cleared.to, cleared.alarm.clearedBy, cleared.alarm.clearValues],
      ['ACTIVE_ACK', 'CLEARED_ACK', 'op', undefined],
    );
    assert.deepEqual(e.clear(raised.alarm.id, 'op', 5), {
      code: 'ALREADY_CLEARED',
      reason: 'alarm 1 is already cleared',
    });
    assert.deepEqual(e.clear('99', 'op', 5), { code: 'NOT_FOUND', reason: 'no alarm 99' });
    assert.deepEqual(feed(e, 'd', 6, { t: 31 }), []);
    assert.deepEqual(kinds(feed(e, 'd', 7, { t: 31 })), ['raised:ACTIVE_UNACK']);
  });

  it('clear by hand of an unacknowledged alarm: ACTIVE_UNACK → CLEARED_UNACK', () => {
    const e = engineFor(rule);
    const [raised] = feed(e, 'd', 1, { t: 31 });
    const cleared = e.clear(raised.alarm.id, 'op', 2);
    assert.ok('transition' in cleared && cleared.to === 'CLEARED_UNACK');
  });

  it('filters by state, device and severity and counts active alarms by severity', () => {
    const e = engineFor(rule, { name: 'cold', kind: 'threshold', raise: 't < 0', severity: 'warning' });
    feed(e, 'a', 1, { t: 31 });
    feed(e, 'b', 1, { t: -1 });
    feed(e, 'c', 1, { t: 40 });
    feed(e, 'c', 2, { t: 20 });
    assert.deepEqual(
      e.list({ state: 'active' }).map((a) => a.device),
      ['a', 'b'],
    );
    assert.deepEqual(
      e.list({ device: 'c' }).map((a) => a.state),
      ['CLEARED_UNACK'],
    );
    assert.deepEqual(
      e.list({ severity: 'warning' }).map((a) => a.device),
      ['b'],
    );
    assert.deepEqual(e.activeBySeverity(), { critical: 1, major: 0, minor: 0, warning: 1, indeterminate: 0 });
  });

  it('property: random readings, acks and clears never leave two active alarms for one (device, rule)', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const e = engineFor(
      { ...rule, raiseForReadings: 2, clearForS: 0.003 },
      { name: 'cold', kind: 'threshold', raise: 't < 0' },
      { name: 'silent', kind: 'absence', silentS: 0.05 },
      { name: 'drain', kind: 'rate', field: 't', windowS: 0.02, raise: 'rate > 100' },
    );
    let raised = 0;
    for (let ts = 0; ts < 20_000; ts++) {
      const device = `d${Math.floor(random() * 5)}`;
      const r = random();
      if (r < 0.8)
        raised += feed(e, device, ts, { t: Math.round(random() * 60 - 10) }).filter(
          (t) => t.transition === 'raised',
        ).length;
      else if (r < 0.85) raised += e.tick(ts).length;
      else {
        const open = e.list({ state: 'open' });
        const target = open[Math.floor(random() * open.length)];
        if (target && r < 0.93) e.ack(target.id, 'op', ts);
        else if (target) e.clear(target.id, 'op', ts);
      }
      const active = new Set<string>();
      for (const a of e.list({ state: 'active' })) {
        const key = `${a.device}/${a.rule}`;
        assert.ok(!active.has(key), `two active alarms for ${key} at ${ts}`);
        active.add(key);
      }
    }
    assert.ok(raised > 50, `the sequence exercised raising (${raised})`);
  });
});

describe('alarm store', () => {
  const rule = { name: 'hot', kind: 'threshold' as const, raise: 't > 30', clear: 't < 25' };

  it('brings active alarms back after a restart without raising them again, with their latest count', () => {
    const dir = tempDir('alarm-store');
    try {
      const file = join(dir.path, 'alarms.json');
      const rules = compileRules([rule]);
      let e = new AlarmEngine(rules, { store: new FileAlarmStore(file) });
      const [raised] = feed(e, 'd', 1, { t: 31 });
      feed(e, 'd', 2, { t: 20 });
      feed(e, 'd', 3, { t: 32 });
      feed(e, 'd', 4, { t: 28 });
      feed(e, 'd', 5, { t: 33 });
      e.flush();
      e.ack(raised.alarm.id, 'op', 6);
      // A restart; the counts updated after the last flush reach disk on close.
      e.close();
      e = new AlarmEngine(rules, { store: new FileAlarmStore(file) });
      assert.deepEqual(
        e.list().map((a) => [a.id, a.state, a.count]),
        [
          ['1', 'CLEARED_ACK', 1],
          ['2', 'ACTIVE_UNACK', 2],
        ],
      );
      assert.deepEqual(feed(e, 'd', 7, { t: 40 }), [], 'the restored alarm holds the slot');
      assert.deepEqual(kinds(feed(e, 'd', 8, { t: 20 })), ['cleared:CLEARED_UNACK']);
      assert.deepEqual(kinds(feed(e, 'd', 9, { t: 40 })), ['raised:ACTIVE_UNACK']);
      assert.equal(e.list({ state: 'active' })[0].id, '3', 'ids keep counting');
      e.close();
    } finally {
      dir.remove();
    }
  });

  it('replays the journal and ignores a torn last line', () => {
    const dir = tempDir('alarm-store');
    try {
      const file = join(dir.path, 'alarms.json');
      const store = new FileAlarmStore(file);
      const e = new AlarmEngine(compileRules([rule]), { store });
      feed(e, 'd', 1, { t: 31 });
      feed(e, 'e', 1, { t: 31 });
      const journal = readFileSync(`${file}.journal`, 'utf8').trim().split('\n');
      assert.equal(journal.length, 2, 'one durable line per transition');
      // Simulate kill -9: reopen the files as another process would, without close().
      const copy = join(dir.path, 'copy.json');
      appendFileSync(copy, readFileSync(file));
      appendFileSync(`${copy}.journal`, `${journal.join('\n')}\n{"id":"3","dev`);
      const reopened = new AlarmEngine(compileRules([rule]), { store: new FileAlarmStore(copy) });
      assert.deepEqual(
        reopened.list().map((a) => [a.device, a.state]),
        [
          ['d', 'ACTIVE_UNACK'],
          ['e', 'ACTIVE_UNACK'],
        ],
      );
      reopened.close();
      e.close();
    } finally {
      dir.remove();
    }
  });
});
