import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { metricsRegistry } from '../../nodes/lib/metrics';
import { helper, nextMessage, nodeModule, nodeModuleWithMessages, type TestNode } from '../support/helper';
import { eventually, tempDir } from '../support/servers';

const alarmNode = nodeModule('alarm');
const T0 = 1_700_000_000_000;

describe('iotb-alarm node', () => {
  const userDir = tempDir('alarm-node');
  before(() => {
    helper.settings({ userDir: userDir.path });
    return helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    helper.settings({});
    userDir.remove();
  });
  afterEach(() => helper.unload());

  const load = async (id: string, rules: unknown[], extra: Record<string, unknown> = {}) => {
    await helper.load(alarmNode, [
      { id, type: 'iotb-alarm', rules, tickS: 0.05, ...extra, wires: [['notes'], ['points'], ['answers']] },
      { id: 'notes', type: 'helper' },
      { id: 'points', type: 'helper' },
      { id: 'answers', type: 'helper' },
    ]);
    const notes: any[] = [];
    const points: any[] = [];
    helper.getNode('notes').on('input', (m) => notes.push(m));
    helper.getNode('points').on('input', (m) => points.push(m));
    return { node: helper.getNode(id), notes, points, answers: helper.getNode('answers') };
  };
  const warm = {
    name: 'warm',
    kind: 'threshold',
    severity: 'critical',
    raise: 'temperature > -10',
    clear: 'temperature < -12',
    raiseForS: 300,
  };
  /** Sends readings, then an ask that the node answers after them (input order is kept). */
  const settle = async (node: TestNode, answers: TestNode): Promise<any[]> => {
    const answered = nextMessage(answers);
    node.receive({ topic: 'alarms/list' });
    const answer = (await answered) as { payload: any[] };
    return answer.payload;
  };

  it('raises after the condition held for its duration, with a note and an InfluxDB point', async () => {
    const { node, notes, points, answers } = await load('a1', [warm]);
    for (let s = 0; s <= 300; s += 30)
      node.receive({
        device: { id: 'f1', type: 'freezer' },
        timestamp: T0 + s * 1000,
        payload: { temperature: -5 },
      });
    const list = await settle(node, answers);
    assert.equal(list.length, 1);
    assert.equal(notes.length, 1);
    const note = notes[0];
    assert.equal(note.topic, 'alarms/f1/warm');
    assert.equal(note.payload.transition, 'raised');
    assert.equal(note.payload.state, 'ACTIVE_UNACK');
    assert.equal(note.payload.startTs, T0 + 300_000);
    assert.deepEqual(note.payload.raiseValues, { temperature: -5 });
    assert.deepEqual(points[0].payload.tags, {
      device: 'f1',
      rule: 'warm',
      severity: 'critical',
      state: 'ACTIVE_UNACK',
    });
    assert.equal(points[0].payload.measurement, 'alarms');
    assert.equal(points[0].payload.timestamp, T0 + 300_000);
    const metrics = await metricsRegistry.getSingleMetricAsString('iotb_alarms_active');
    assert.match(metrics, /iotb_alarms_active\{severity="critical"\} 1/);
  });

  it('does not raise on an excursion shorter than the duration', async () => {
    const { node, notes, answers } = await load('a2', [warm]);
    const temps = [-5, -5, -5, -15, -5, -5, -15]; // 270 s warm at most, every 90 s
    temps.forEach((t, i) =>
      node.receive({
        device: { id: 'f2', type: 'freezer' },
        timestamp: T0 + i * 90_000,
        payload: { temperature: t },
      }),
    );
    assert.deepEqual(await settle(node, answers), []);
    assert.equal(notes.length, 0);
  });

  it('hysteresis: a noisy signal crossing the raise threshold 100 times inside the band raises at most once', async () => {
    const { node, notes, answers } = await load('a3', [{ ...warm, raiseForS: 0 }]);
    for (let i = 0; i < 200; i++)
      node.receive({
        device: { id: 'f3', type: 'freezer' },
        timestamp: T0 + i * 1000,
        payload: { temperature: i % 2 ? -9.6 : -10.4 },
      });
    const [alarm] = await settle(node, answers);
    assert.equal(notes.filter((n) => n.payload.transition === 'raised').length, 1);
    assert.equal(notes.length, 1);
    assert.equal(alarm.count, 100);
  });

  it('raises an absence alarm for a silent device and clears it when the device speaks again', async () => {
    const { node, notes } = await load('a4', [
      { name: 'silent', kind: 'absence', silentS: 0.3, severity: 'minor' },
    ]);
    node.receive({ device: { id: 'quiet', type: 't' }, payload: { v: 1 } });
    node.receive({ device: { id: 'chatty', type: 't' }, payload: { v: 1 } });
    const talk = setInterval(
      () => node.receive({ device: { id: 'chatty', type: 't' }, payload: { v: 1 } }),
      50,
    );
    try {
      await eventually('an absence alarm', () => Promise.resolve(notes.length ? true : undefined));
    } finally {
      clearInterval(talk);
    }
    assert.deepEqual(
      notes.map((n) => `${n.payload.device}/${n.payload.rule}/${n.payload.transition}`),
      ['quiet/silent/raised'],
    );
    node.receive({ device: { id: 'quiet', type: 't' }, payload: { v: 2 } });
    await eventually('the clear', () => Promise.resolve(notes.length === 2 ? true : undefined));
    assert.equal(notes[1].payload.transition, 'cleared');
    assert.equal(notes[1].payload.device, 'quiet');
  });

  it('reports a device silent since before a redeploy (last-seen times are kept)', async () => {
    const rules = [{ name: 'silent', kind: 'absence', silentS: 0.5 }];
    const { node, answers } = await load('a8', rules, { tickS: 60 });
    node.receive({ device: { id: 'gone', type: 't' }, payload: { v: 1 } });
    await settle(node, answers);
    await helper.unload();
    const loaded = await load('a8', rules, { tickS: 0.05 });
    await eventually('the absence alarm of a device not seen since the redeploy', () =>
      Promise.resolve(loaded.notes.length ? true : undefined),
    );
    assert.equal(loaded.notes[0].payload.device, 'gone');
  });

  it('judges each element of a multi-device batch with its own device, time and quality', async () => {
    const { node, notes, answers } = await load('a5', [
      { name: 'hot', kind: 'threshold', raise: 't > 30' },
      { name: 'dq', kind: 'quality', windowS: 60, minReadings: 2, raise: 'share >= 0.5' },
    ]);
    node.receive({
      topic: 'batch',
      device: [
        { id: 'x', type: 's' },
        { id: 'y', type: 's' },
        { id: 'y', type: 's' },
      ],
      payload: [{ t: 35 }, { t: 20 }, { t: 21 }],
      timestamp: [T0, T0 + 1, T0 + 2],
      quality: [null, { t: { flag: 'suspect' } }, { t: { flag: 'suspect' } }],
    });
    await settle(node, answers);
    assert.deepEqual(
      notes.map((n) => `${n.payload.device}/${n.payload.rule}@${n.payload.startTs - T0}`).sort(),
      ['x/hot@0', 'y/dq@2'],
    );
  });

  it('answers list, get, ack and clear with the lifecycle, and {code, reason} errors', async () => {
    const { node, notes, answers } = await load('a6', [{ name: 'hot', kind: 'threshold', raise: 't > 30' }]);
    node.receive({ device: { id: 'd', type: 's' }, payload: { t: 40 } });
    const [alarm] = await settle(node, answers);
    const ask = (msg: Record<string, unknown>): Promise<any> => {
      const a = nextMessage(answers);
      node.receive(msg);
      return a;
    };
    let a = await ask({ topic: 'alarms/ack', alarmId: alarm.id, operator: { apiKeyId: 'k1' } });
    assert.equal(a.statusCode, 200);
    assert.deepEqual([a.payload.state, a.payload.ackBy], ['ACTIVE_ACK', 'apiKey:k1']);
    a = await ask({ topic: 'alarms/ack', alarmId: alarm.id });
    assert.deepEqual([a.statusCode, a.payload.code], [409, 'ALREADY_ACKED']);
    a = await ask({ topic: 'alarms/clear', alarmId: alarm.id, user: 'alice' });
    assert.deepEqual([a.statusCode, a.payload.state, a.payload.clearedBy], [200, 'CLEARED_ACK', 'alice']);
    a = await ask({ topic: 'alarms/get', alarmId: 'nope' });
    assert.deepEqual([a.statusCode, a.payload], [404, { code: 'NOT_FOUND', reason: 'no alarm nope' }]);
    a = await ask({ topic: 'alarms/list', filter: { state: 'bogus' } });
    assert.equal(a.statusCode, 400);
    assert.equal(a.payload.code, 'BAD_FILTER');
    a = await ask({ topic: 'alarms/list', filter: { limit: '0' } });
    assert.deepEqual([a.statusCode, a.payload.reason], [400, 'limit must be a whole number from 1 to 10000']);
    a = await ask({ topic: 'alarms/list', filter: { limit: '1' } });
    assert.equal(a.payload.length, 1);
    a = await ask({ topic: 'alarms/list', filter: { state: 'open' } });
    assert.deepEqual(a.payload, []);
    assert.deepEqual(
      notes.map((n) => String(n.payload.transition)),
      ['raised', 'acknowledged', 'cleared'],
    );
  });

  it('refuses invalid rules at deploy with the rule and the reason', async () => {
    await helper.load(nodeModuleWithMessages('alarm'), [
      {
        id: 'bad',
        type: 'iotb-alarm',
        rules: [{ name: 'x', kind: 'threshold', raise: 't >' }],
        wires: [[], [], []],
      },
    ]);
    const bad = helper.getNode('bad');
    // done(err) on every input (Node-RED reports it through node.error), so a Catch node sees why.
    const failed = new Promise<any>((resolve) =>
      bad.on('call:error', (call: any) => {
        if (call.args[1]) resolve(call);
      }),
    );
    bad.receive({ device: { id: 'd' }, payload: { t: 1 } });
    const call = await failed;
    assert.match(String(call.args[0]), /rule 'x': raise condition: expected a number/);
  });

  it('counts a reading without msg.device as refused', async () => {
    const { node, answers } = await load('a7', [{ name: 'hot', kind: 'threshold', raise: 't > 30' }]);
    const before =
      (await metricsRegistry.getSingleMetric('iotb_rejected_total')!.get()).values.find(
        (v) => v.labels.stage === 'alarm' && v.labels.code === 'NO_DEVICE',
      )?.value ?? 0;
    node.receive({ payload: { t: 40 } });
    await settle(node, answers);
    const afterCount = (await metricsRegistry.getSingleMetric('iotb_rejected_total')!.get()).values.find(
      (v) => v.labels.stage === 'alarm' && v.labels.code === 'NO_DEVICE',
    )?.value;
    assert.equal(afterCount, before + 1);
  });
});
