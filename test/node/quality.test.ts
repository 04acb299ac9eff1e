import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { helper, nextMessage, nodeModule, nodeModuleWithMessages } from '../support/helper';
import { tempDir } from '../support/servers';
import { metricsRegistry } from '../../nodes/lib/metrics';

const qualityNode = nodeModule('quality');
const registryNode = nodeModule('registry');
const T0 = 1_700_000_000_000;

/** Resolves with the first `n` messages arriving at helper node `id`. */
function messages(id: string, n: number): Promise<any[]> {
  const got: any[] = [];
  return new Promise((resolve) =>
    helper.getNode(id).on('input', (m: any) => {
      got.push(m);
      if (got.length === n) resolve(got);
    }),
  );
}

function reading(deviceId: string, i: number, payload: unknown): any {
  return {
    topic: `devices/${deviceId}/telemetry`,
    device: { id: deviceId, type: 'thermo' },
    timestamp: T0 + i * 1000,
    payload,
  };
}

const flow = (cfg: Record<string, unknown> = {}) => [
  { id: 'q', type: 'iotb-quality', persist: false, wires: [['out'], ['rej']], ...cfg },
  { id: 'out', type: 'helper' },
  { id: 'rej', type: 'helper' },
];

describe('iotb-quality node', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('passes clean readings untouched and replaces a spike by the level of the window, keeping the raw value', async () => {
    await helper.load(qualityNode, flow());
    const all = messages('out', 8);
    const q = helper.getNode('q');
    [20, 21, 20, 22, 20, 21, 20].forEach((t, i) => q.receive(reading('d1', i, { t, label: 'x' })));
    q.receive(reading('d1', 7, { t: 95, label: 'x' }));
    const out = await all;
    const msg = out[7];
    assert.ok(out.slice(0, 7).every((m) => m.quality === undefined));
    // The level of 20, 21, 20, 22, 20, 21, 20: none beyond the noise floor from it, the newest weighing most.
    assert.deepEqual([msg.payload.label, msg.payload.t.toFixed(3)], ['x', '20.508']);
    assert.deepEqual(
      [msg.quality.t.flag, msg.quality.t.code, msg.quality.t.method, msg.quality.t.raw],
      ['imputed', 3, 'median', 95],
    );
  });

  it('sends a replaced reading again with its raw value when the next one agrees with it (a possible new level)', async () => {
    await helper.load(qualityNode, flow());
    const all = messages('out', 10);
    const q = helper.getNode('q');
    [20, 21, 20, 22, 20, 21, 20, 30, 30.1].forEach((t, i) => q.receive(reading('d1', i, { t })));
    const out = await all;
    assert.deepEqual([out[7].payload.t.toFixed(3), out[7].quality.t.flag], ['20.508', 'imputed']);
    const [restored, next] = out.slice(8);
    assert.deepEqual(
      [restored.restored, restored.timestamp, restored.payload, restored.quality.t.flag, restored.messageId],
      [true, T0 + 7000, { t: 30 }, 'suspect', `d1:${T0 + 7000}`],
    );
    assert.deepEqual([next.payload, next.quality.t.flag], [{ t: 30.1 }, 'suspect']);
  });

  it('warns once per device type about numeric fields beyond its field table', async () => {
    await helper.load(qualityNode, flow({ maxFields: 1 }));
    const all = messages('out', 6);
    const q = helper.getNode('q');
    for (let i = 0; i < 5; i++) q.receive(reading('d1', i, { a: 1, [`extra${i}`]: 2 }));
    q.receive({ ...reading('m1', 0, { a: 1, b: 2 }), device: { id: 'm1', type: 'meter' } });
    await all;
    const warnings = (helper.log().args as any[][])
      .filter((a) => a[0].level === helper.log().WARN && a[0].id === 'q')
      .map((a) => String(a[0].msg));
    // The test runtime has no message catalogs: the key stands for the text (locales/en-US/quality.json).
    assert.deepEqual(warnings, ['iotb-quality.warn.untracked', 'iotb-quality.warn.untracked']);
  });

  it('rejects to the last output with a counted rejection', async () => {
    await helper.load(qualityNode, flow({ rules: [{ field: 't', max: 40, rangeAction: 'reject' }] }));
    const rejected = nextMessage(helper.getNode('rej'));
    helper.getNode('q').receive(reading('d1', 0, { t: 41 }));
    const msg = await rejected;
    assert.equal(msg.rejection.stage, 'quality');
    assert.equal(msg.rejection.code, 'RANGE');
    assert.match(msg.rejection.reason, /t 41 is outside the gross range \[-Infinity, 40\]/);
    assert.match(await metricsRegistry.metrics(), /iotb_rejected_total\{stage="quality",code="RANGE"\} \d+/);

    const noDevice = nextMessage(helper.getNode('rej'));
    helper.getNode('q').receive({ payload: { t: 1 } });
    assert.equal((await noDevice).rejection.code, 'NO_DEVICE');
  });

  it('reads the gross range from the device type schema of the selected registry', async () => {
    const dir = tempDir('quality-registry');
    try {
      helper.settings({ userDir: dir.path });
      const schema = { type: 'object', properties: { t: { type: 'number', minimum: -20, maximum: 50 } } };
      await helper.load(
        [registryNode, qualityNode],
        [
          {
            id: 'reg',
            type: 'iotb-registry',
            file: 'registry.json',
            types: [{ name: 'thermo', schema: JSON.stringify(schema) }],
          },
          ...flow({ registry: 'reg' }),
        ],
        { reg: { secret: 'test-only-registry-secret-0123456789abcdef' } },
      );
      const got = nextMessage(helper.getNode('out'));
      helper.getNode('q').receive(reading('d1', 0, { t: 51 }));
      const msg = await got;
      assert.deepEqual([msg.quality.t.flag, msg.quality.t.code], ['bad', 4]);
      assert.match(msg.quality.t.reason, /\[-20, 50\]/);

      // A changed device type takes effect at once (the registry's 'types' event).
      helper
        .getNode('reg')
        .registry.putType({ name: 'thermo', schema: { ...schema, properties: { t: { maximum: 30 } } } });
      const after = nextMessage(helper.getNode('out'));
      helper.getNode('q').receive(reading('d1', 1, { t: 40 }));
      assert.match((await after).quality.t.reason, /\[-Infinity, 30\]/);
    } finally {
      await helper.unload();
      helper.settings({});
      dir.remove();
    }
  });

  it('handles an array of readings element by element, with quality as a parallel array', async () => {
    await helper.load(
      qualityNode,
      flow({
        rules: [
          { field: 't', max: 40, rangeAction: 'reject' },
          { field: 'h', max: 100 },
        ],
      }),
    );
    const out = nextMessage(helper.getNode('out'));
    const rej = nextMessage(helper.getNode('rej'));
    helper.getNode('q').receive(
      reading('d1', 0, [
        { ts: T0, t: 20, h: 50 },
        { ts: T0 + 1000, t: 99, h: 50 },
        { ts: T0 + 2000, t: 21, h: 150 },
      ]),
    );
    const [ok, bad] = await Promise.all([out, rej]);
    assert.deepEqual(ok.payload, [
      { ts: T0, t: 20, h: 50 },
      { ts: T0 + 2000, t: 21, h: 150 },
    ]);
    assert.equal(ok.quality[0], null);
    assert.equal(ok.quality[1].h.flag, 'bad');
    assert.deepEqual(bad.payload, { ts: T0 + 1000, t: 99, h: 50 }, 'a refused reading leaves alone');
    assert.equal(bad.rejection.code, 'RANGE');
    assert.equal(bad.rejection.details.index, 1);
    assert.equal(bad.device.id, 'd1');
  });

  it('judges a batch as iotb-validate sends it (times in msg.timestamp[i]) and keeps the arrays parallel', async () => {
    await helper.load(
      qualityNode,
      flow({
        expectedIntervalS: 10,
        fillGaps: true,
        rules: [{ field: 't', max: 40, rangeAction: 'reject', spike: false }],
      }),
    );
    const out = nextMessage(helper.getNode('out'));
    const rej = nextMessage(helper.getNode('rej'));
    helper.getNode('q').receive({
      device: { id: 'd1', type: 'thermo' },
      payload: [{ t: 0 }, { t: 99 }, { t: 20 }],
      timestamp: [T0, T0 + 10_000, T0 + 30_000],
      messageId: ['m0', 'm1', 'm2'],
    });
    const [ok, bad] = await Promise.all([out, rej]);
    const n = ok.payload.length;
    assert.ok(n > 2, 'the gap from T0 to T0+30 s (times from msg.timestamp) was filled');
    for (const parallel of [ok.timestamp, ok.messageId, ok.quality]) assert.equal(parallel.length, n);
    assert.deepEqual([ok.payload[0], ok.timestamp[0], ok.messageId[0]], [{ t: 0 }, T0, 'm0']);
    assert.deepEqual(
      [ok.payload[n - 1], ok.timestamp[n - 1], ok.messageId[n - 1]],
      [{ t: 20 }, T0 + 30_000, 'm2'],
    );
    for (let i = 1; i < n - 1; i++) {
      assert.equal(ok.quality[i].t.flag, 'imputed');
      assert.equal(ok.payload[i].ts, ok.timestamp[i]);
      assert.equal(ok.messageId[i], `d1:${ok.timestamp[i]}`);
    }
    assert.deepEqual(bad.payload, { t: 99 });
    assert.equal(bad.timestamp, T0 + 10_000);
    assert.equal(bad.messageId, 'm1');
  });

  it('keeps per-device state for each element of a batch of many devices, arrays and ack ids in step', async () => {
    await helper.load(
      qualityNode,
      flow({
        expectedIntervalS: 10,
        fillGaps: true,
        rules: [{ field: 't', max: 1000, rangeAction: 'reject' }],
      }),
    );
    const out = nextMessage(helper.getNode('out'));
    const rej = nextMessage(helper.getNode('rej'));
    const batch = {
      payload: [] as unknown[],
      device: [] as unknown[],
      timestamp: [] as number[],
      ackId: [] as unknown[],
    };
    const add = (id: string, at: number, t: number): void => {
      batch.payload.push({ t });
      batch.device.push({ id, type: 'thermo' });
      batch.timestamp.push(T0 + at);
      batch.ackId.push(batch.ackId.length + 100);
    };
    // d1 and d2 interleaved on very different levels: each is judged against its own history only.
    [20, 21, 20, 22, 20, 21, 20, 95].forEach((t, k) => {
      add('d1', k * 10_000, t);
      add('d2', k * 10_000, 500 + (k % 3));
    });
    add('d3', 0, 5000); // out of range: refused alone
    add('d4', 0, 0);
    add('d4', 30_000, 30); // a 30 s gap at 10 s intervals: two readings imputed before it
    helper
      .getNode('q')
      .receive({ topic: 'batch', messageId: batch.payload.map((_, i) => `m${i}`), ...batch });
    const [ok, bad] = await Promise.all([out, rej]);
    const n = ok.payload.length;
    assert.equal(n, 16 + 2 + 2);
    for (const parallel of [ok.device, ok.ackId, ok.timestamp, ok.messageId, ok.quality])
      assert.equal(parallel.length, n);
    const of = (id: string): number[] =>
      (ok.device as { id: string }[]).flatMap((d, i) => (d.id === id ? [i] : []));
    assert.ok(
      of('d2').every((i) => ok.quality[i] === null),
      'd2 is not judged against d1 (or d1 against d2)',
    );
    const d1 = of('d1');
    assert.ok(d1.slice(0, 7).every((i) => ok.quality[i] === null));
    const spike = d1[7];
    assert.deepEqual(
      [ok.payload[spike].t.toFixed(3), ok.quality[spike].t.flag, ok.quality[spike].t.raw],
      ['20.508', 'imputed', 95],
    );
    assert.equal(ok.ackId[spike], 114, 'a cleaned reading keeps its ack id');
    const d4 = of('d4');
    assert.deepEqual(
      d4.map((i): unknown[] => [ok.timestamp[i] - T0, ok.ackId[i], ok.quality[i]?.t.check ?? null]),
      [
        [0, 117, null],
        [10_000, null, 'gap'],
        [20_000, null, 'gap'],
        [30_000, 118, null],
      ],
    );
    assert.deepEqual(
      [
        bad.payload,
        bad.device.id,
        bad.ackId,
        bad.timestamp,
        bad.messageId,
        bad.rejection.code,
        bad.rejection.details.index,
      ],
      [{ t: 5000 }, 'd3', 116, T0, 'm16', 'RANGE', 16],
    );
    assert.equal(bad.topic, 'batch', "the batch message's other properties go with a refused reading");
  });

  it('fills a gap with imputed readings before the reading that ends it', async () => {
    await helper.load(
      qualityNode,
      flow({ expectedIntervalS: 10, fillGaps: true, rules: [{ field: 't', spike: false }] }),
    );
    const all = messages('out', 5);
    const q = helper.getNode('q');
    q.receive(reading('d1', 0, { t: 0 }));
    q.receive(reading('d1', 40, { t: 30 }));
    const out = await all;
    assert.deepEqual(
      out.map((m): unknown[] => [m.timestamp - T0, m.payload.t, m.imputed === true]),
      [
        [0, 0, false],
        [10_000, 7.5, true],
        [20_000, 15, true],
        [30_000, 22.5, true],
        [40_000, 30, false],
      ],
    );
    assert.equal(out[1].quality.t.check, 'gap');
  });

  it('answers a scorecard request', async () => {
    await helper.load(qualityNode, flow({ rules: [{ field: 't', max: 40 }] }));
    const q = helper.getNode('q');
    const all = messages('out', 3);
    q.receive(reading('d1', 0, { t: 10 }));
    q.receive(reading('d1', 1, { t: 90 }));
    q.receive({ scorecard: true });
    const msg = (await all)[2];
    assert.equal(msg.topic, 'quality/scorecard');
    assert.deepEqual(
      [msg.payload[0].device, msg.payload[0].readings, msg.payload[0].flaggedPct.range],
      ['d1', 2, 50],
    );
  });

  it('reports an invalid rule at deploy time in the status and on every message', async () => {
    await helper.load(nodeModuleWithMessages('quality'), flow({ rules: [{ field: 't', min: 5, max: 1 }] }));
    const q = helper.getNode('q');
    const err = new Promise<any>((resolve) =>
      q.on('call:error', (call: any) => {
        if (call.args[1]) resolve(call); // the message's error, not the deploy-time log line
      }),
    );
    q.receive(reading('d1', 0, { t: 1 }));
    assert.match(String((await err).args[0]), /min \(5\) is above max \(1\)/);
  });

  it('saves its state in the user dir on close and deletes it when the node is removed', async () => {
    const dir = tempDir('quality-node');
    try {
      helper.settings({ userDir: dir.path });
      await helper.load(qualityNode, flow({ persist: true }));
      const got = nextMessage(helper.getNode('out'));
      helper.getNode('q').receive(reading('d1', 0, { t: 1 }));
      await got;
      await helper.unload();
      const file = join(dir.path, 'iotb-quality', 'q.state');
      assert.ok(existsSync(file));

      await helper.load(qualityNode, flow({ persist: true }));
      await (helper as any).setFlows([{ id: 'other', type: 'helper' }], 'full'); // deployed without the node
      assert.ok(!existsSync(file), 'a removed node leaves no state behind');
    } finally {
      helper.settings({});
      dir.remove();
    }
  });
});
