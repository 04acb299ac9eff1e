import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QualityEngine, type QualityOptions } from '../../nodes/lib/quality/engine';
import { opcUaStatus } from '../../nodes/lib/quality/flags';
import { meanOf, medianOf, robustScale, weightedMeanWithoutOutliers } from '../../nodes/lib/quality/robust';
import { PRESETS, resolveRule, RuleError } from '../../nodes/lib/quality/rules';
import { MemoryStateStore } from '../../nodes/lib/quality/state';

const T0 = 1_700_000_000_000;
const S = 1000;

/** Feeds `values` of field x (one per second from T0) and returns each outcome's flag and output value. */
function feed(opts: QualityOptions, values: (number | null | undefined)[], field = 'x') {
  const q = new QualityEngine(opts);
  return {
    q,
    out: values.map((v, i) => {
      const payload: Record<string, unknown> = v === undefined ? {} : { [field]: v };
      const o = q.process('d1', 't', T0 + i * S, payload);
      return {
        value: payload[field],
        q: o.quality?.[field],
        rejected: o.rejected,
        gapSlots: o.gapSlots,
        fills: o.fills,
      };
    }),
  };
}

const noChecks = { spike: false };

describe('robust statistics', () => {
  it('median of odd and even windows, and the mean', () => {
    const s = new Float64Array(8);
    assert.equal(medianOf(Float64Array.from([9, 1, 5]), 0, 3, s), 5);
    assert.equal(medianOf(Float64Array.from([0, 4, 1, 3, 2]), 1, 4, s), 2.5); // [4,1,3,2]
    assert.equal(meanOf(Float64Array.from([1, 2, 3, 10]), 0, 4), 4);
  });

  it('scale is 1.4826·MAD, falls back to 1.2533·mean |deviation| when MAD = 0, and is 0 for equal values', () => {
    const s = new Float64Array(7);
    const w = Float64Array.from([1, 2, 3, 4, 5, 6, 7]); // |x-4| sorted: 0 1 1 2 2 3 3 -> MAD 2
    assert.equal(robustScale(w, 0, 7, 4, s), 1.4826 * 2);
    const m = Float64Array.from([10, 11, 10, 12, 10, 11, 10]); // deviations 0 1 0 2 0 1 0 -> MAD 0, mean 4/7
    assert.equal(robustScale(m, 0, 7, 10, s), (1.2533 * 4) / 7);
    assert.equal(robustScale(new Float64Array(7).fill(5), 0, 7, 5, s), 0);
  });

  it('weighted mean without outliers: every value counts within the limit, at most two beyond it are dropped', () => {
    const ones = new Float64Array(7).fill(1);
    const level = (xs: number[], limit: number, w = ones): number =>
      weightedMeanWithoutOutliers(Float64Array.from(xs), xs.length, w, limit);
    // No value beyond the limit from the mean: all count, by their weights.
    assert.equal(level([10, 11, 10, 12, 10, 11, 10], 5), 74 / 7);
    assert.equal(level([12, 10], 5, Float64Array.from([3, 1])), 11.5);
    // One high and one low: both dropped (the second judged against the mean of the rest).
    assert.equal(level([10, 10, 40, 10, -20, 10, 10], 5), 10);
    // Three beyond the limit: two dropped, the farthest first; the third stays.
    assert.equal(level([10, 10, 40, 10, 30, 10, 25], 5), (4 * 10 + 25) / 5);
    // Equal values give exactly that value, whatever the limit.
    assert.equal(level([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], 0), 0.1);
  });
});

describe('gross range', () => {
  it('flags a value outside min/max as bad (code 4), keeps it and its raw value, and keeps it out of the window', () => {
    const { out } = feed({ rules: [{ field: 'x', min: 0, max: 100, ...noChecks }] }, [50, 150, -1, 60]);
    assert.equal(out[0].q, undefined);
    assert.deepEqual(
      { ...out[1].q, reason: undefined },
      { flag: 'bad', code: 4, check: 'range', raw: 150, reason: undefined },
    );
    assert.match(out[1].q!.reason, /x 150 is outside the gross range \[0, 100\]/);
    assert.equal(out[1].value, 150);
    assert.equal(out[2].q?.code, 4);
    assert.equal(out[3].q, undefined);
  });

  it('flags the suspect span with code 3 and replaces a bad value by LOCF when asked', () => {
    const { out } = feed(
      {
        rules: [
          {
            field: 'x',
            min: 0,
            max: 100,
            suspectMax: 80,
            rangeAction: 'replace',
            replaceWith: 'locf',
            ...noChecks,
          },
        ],
      },
      [50, 90, 150],
    );
    assert.equal(out[1].q?.flag, 'imputed'); // suspect, replaced by the last good value
    assert.equal(out[1].q?.code, 3);
    assert.equal(out[1].value, 50);
    assert.deepEqual(
      [out[2].q?.flag, out[2].q?.code, out[2].q?.method, out[2].q?.raw, out[2].value],
      ['imputed', 4, 'locf', 150, 50],
    );
  });

  it('takes min/max from the device type schema unless the rule sets them', () => {
    const schema = {
      type: 'object',
      properties: { x: { type: 'number', minimum: -10, exclusiveMaximum: 40 } },
    };
    const r = resolveRule('x', undefined, schema);
    assert.deepEqual([r.min, r.max], [-10, 40]);
    assert.deepEqual(
      [resolveRule('x', { field: 'x', max: 30 }, schema).max, resolveRule('y', undefined, schema).max],
      [30, Infinity],
    );
    const q = new QualityEngine({ schemaFor: (t) => (t === 't' ? schema : undefined) });
    const payload = { x: 41 };
    assert.equal(q.process('d', 't', T0, payload).quality?.x.code, 4);
    assert.equal(q.process('d', 'other', T0 + S, { x: 41 }).quality, undefined);
  });
});

describe('spike (Hampel identifier)', () => {
  const spikeOnly = { rules: [{ field: 'x', impute: 'none' as const }] };

  it('does not judge until the window of 7 is full', () => {
    const { out } = feed(spikeOnly, [10, 10, 10, 10, 10, 10, 1000]);
    assert.ok(out.every((o) => o.q === undefined));
  });

  it('judges the window carried along its trend: 1..7 rising 1/s all carry to 8, the learned noise is the limit', () => {
    // The trend learned from the window is 1/s; carried to the new value's time every value is 8, so the window's
    // scale is 0 and the floor decides: |Δ| = 1 → σ̂ 0.886, (3 + 2.5)·σ̂ = 4.87.
    const below = feed(spikeOnly, [1, 2, 3, 4, 5, 6, 7, 12.8]).out[7];
    assert.equal(below.q, undefined);
    const above = feed(spikeOnly, [1, 2, 3, 4, 5, 6, 7, 17]).out[7];
    assert.deepEqual(
      [above.q?.flag, above.q?.code, above.q?.check, above.q?.method, above.q?.raw, above.value],
      ['imputed', 3, 'spike', 'median', 17, 8],
    );
    assert.match(
      above.q!.reason,
      /x 17 is 9 from 8, the level of the last 7 values carried along the trend \(limit 4\.87\)/,
    );
  });

  it('MAD = 0: the window scale falls back to the mean absolute deviation, the learned noise is the floor', () => {
    // Window limit 3·1.2533·4/7 = 2.1485; no trend (the differences sum to 0). The first differences 1 1 2 2 1 1
    // have a mean of 1.3333, σ̂ = 1.3333·√π/2 = 1.1816 and the floor (3 + 2.5)·σ̂ = 6.499 decides. The level:
    // newest first 10 11 10 12 10 11 10 weighted 1, 0.7, 0.49, … 0.118 (none beyond the floor from it):
    // 10 + (0.7 + 2·0.343 + 0.168) / 3.0588 = 10.508; the limit is reached at 17.007.
    const w = [10, 11, 10, 12, 10, 11, 10];
    assert.equal(feed(spikeOnly, [...w, 16.95]).out[7].q, undefined);
    const above = feed(spikeOnly, [...w, 17.05]).out[7].q;
    assert.equal(above?.check, 'spike');
    assert.match(above.reason, /\(limit 6\.5\)/);
  });

  it('all values equal: any other value is a spike unless within spikeMinDeviation; equal values never are', () => {
    const same = [5, 5, 5, 5, 5, 5, 5];
    assert.equal(feed(spikeOnly, [...same, 5]).out[7].q, undefined);
    assert.equal(feed(spikeOnly, [...same, 5.1]).out[7].q?.check, 'spike');
    const tolerant = { rules: [{ field: 'x', spikeMinDeviation: 0.5 }] };
    assert.equal(feed(tolerant, [...same, 5.1]).out[7].q, undefined);
  });

  it('flag-only action keeps the value', () => {
    const { out } = feed({ rules: [{ field: 'x', spikeAction: 'flag' }] }, [1, 2, 3, 4, 5, 6, 7, 100]);
    assert.deepEqual([out[7].q?.flag, out[7].value], ['suspect', 100]);
  });
});

describe('rate of change', () => {
  it('flags a change faster than maxRate per second (code 3) against the last accepted value', () => {
    const values = [10, 10.1, 10.2, 10.1, 13, 10.3, 10.4];
    const { out } = feed({ rules: [{ field: 'x', maxRate: 1, ...noChecks }] }, values);
    // 10.3 is compared with 10.1 (2 s before), not with the doubted 13. The limit adds what the learned noise
    // can do (|Δ| 0.1 → σ̂ 0.0886, √2·5.5σ̂ = 0.69) to 1/s · 1 s.
    assert.deepEqual(
      out.map((o) => o.q?.check),
      [undefined, undefined, undefined, undefined, 'rate', undefined, undefined],
    );
    assert.match(
      out[4].q!.reason,
      /changed by 2\.9 in 1 s since the last accepted value \(limit 1\.69: 1\/s/,
    );
  });
});

describe('flat line', () => {
  it('flags from the N-th identical reading', () => {
    const { out } = feed({ rules: [{ field: 'x', flatCount: 3, ...noChecks }] }, [5, 5, 5, 5, 6, 5]);
    assert.deepEqual(
      out.map((o) => o.q?.check),
      [undefined, undefined, 'flatline', 'flatline', undefined, undefined],
    );
    assert.equal(out[2].q?.code, 3);
  });

  it('flags once a value has not changed for T seconds, within the tolerance', () => {
    const { out } = feed(
      { rules: [{ field: 'x', flatSeconds: 2, flatTolerance: 0.01, ...noChecks }] },
      [5, 5.005, 5, 7],
    );
    assert.deepEqual(
      out.map((o) => o.q?.check),
      [undefined, undefined, 'flatline', undefined],
    );
  });
});

describe('out-of-order readings', () => {
  it('pass through flagged and leave the state as it was', () => {
    const q = new QualityEngine({ rules: [{ field: 'x', maxRate: 1, ...noChecks }] });
    q.process('d', 't', T0 + 10 * S, { x: 10 });
    const late = { x: 500 };
    const o = q.process('d', 't', T0 + 5 * S, late);
    assert.deepEqual([o.quality?.x.flag, o.quality?.x.check, late.x], ['suspect', 'order', 500]);
    // The next reading is judged against x=10 at T0+10s, not against the late 500.
    assert.equal(q.process('d', 't', T0 + 11 * S, { x: 10.5 }).quality, undefined);
    const dup = q.process('d', 't', T0 + 11 * S, { x: 10.5 });
    assert.equal(dup.quality?.x.check, 'order');
  });
});

describe('missing values', () => {
  it('LOCF within the maximum gap, then missing (never beyond it)', () => {
    const q = new QualityEngine({ rules: [{ field: 'x', maxGapS: 60, impute: 'locf', ...noChecks }] });
    q.process('d', 't', T0, { x: 20 });
    const p1: Record<string, unknown> = {};
    const o1 = q.process('d', 't', T0 + 60 * S, p1);
    assert.deepEqual(
      [p1.x, o1.quality?.x.flag, o1.quality?.x.code, o1.quality?.x.method, o1.quality?.x.raw],
      [20, 'imputed', 9, 'locf', null],
    );
    const p2: Record<string, unknown> = { x: null };
    const o2 = q.process('d', 't', T0 + 61 * S, p2);
    assert.deepEqual([p2.x, o2.quality?.x.flag, o2.quality?.x.code], [null, 'missing', 9]);
  });

  it('window mean, and the level of the window carried along the trend', () => {
    const mean = feed({ rules: [{ field: 'x', impute: 'mean', ...noChecks }] }, [1, 2, 3, 10, null]).out[4];
    assert.deepEqual([mean.value, mean.q?.method], [4, 'mean']);
    const imputeMedian = { rules: [{ field: 'x', impute: 'median' as const, ...noChecks }] };
    // Differences sum to 0: no trend. The noise learned from the first differences 0.1 0.1 8 8, each clipped at 4×
    // the estimate (0.1, 0.1, 0.4, 0.8): 0.35, σ̂ 0.31, floor (3 + 2.5)·σ̂ = 1.71. Newest first 2, 10, 2, 2.1, 2
    // weighted 1, 0.7, 0.49, 0.343, 0.2401: the 10 is beyond the floor from their mean and dropped, the rest give
    // 2 + 0.343 · 0.1 / 2.0731 = 2.0165.
    const flat = feed(imputeMedian, [2, 2.1, 2, 10, 2, undefined]).out[5];
    assert.equal(flat.q?.method, 'median');
    assert.ok(Math.abs((flat.value as number) - (2 + (0.343 * 0.1) / 2.0731)) < 1e-9, String(flat.value));
    // Trend 1/s: 1..4 at 1..4 s, each carried to 5 s, are all 5.
    const rising = feed(imputeMedian, [1, 2, 3, 4, undefined]).out[4];
    assert.deepEqual([rising.value, rising.q?.method], [5, 'median']);
  });

  it('the level drops a spike in the window and weighs the newest values most', () => {
    // Alternating 20/21: no trend, noise floor 4.87. 40 is a spike, replaced by the level: newest first
    // 20 21 20 21 20 21 20, weights 1, 0.7, 0.49, … 0.7⁶ (none beyond the floor): 20 + (0.7 + 0.7³ + 0.7⁵) / 3.0588.
    const { out } = feed({ rules: [{ field: 'x' }] }, [20, 21, 20, 21, 20, 21, 20, 40, null]);
    assert.equal(out[7].q?.check, 'spike');
    const all = 1 + 0.7 + 0.7 ** 2 + 0.7 ** 3 + 0.7 ** 4 + 0.7 ** 5 + 0.7 ** 6;
    const level = 20 + (0.7 + 0.7 ** 3 + 0.7 ** 5) / all;
    assert.ok(Math.abs((out[7].value as number) - level) < 1e-9, String(out[7].value));
    // The spike is in the window now (newest first 40 20 21 20 21 20 21): beyond the floor from the mean, dropped;
    // weights 0.7 … 0.7⁶ on 20 21 20 21 20 21: 20.412, where the median says 21.
    const imputed = 20 + (0.7 ** 2 + 0.7 ** 4 + 0.7 ** 6) / (all - 1);
    assert.ok(Math.abs((out[8].value as number) - imputed) < 1e-9, String(out[8].value));
    assert.deepEqual([out[8].q?.flag, out[8].q?.method], ['imputed', 'median']);
  });

  it('linear: extrapolates the last two good values, clamped to the gross range', () => {
    const lin = feed({ rules: [{ field: 'x', impute: 'linear', ...noChecks }] }, [10, 12, null]).out[2];
    assert.deepEqual([lin.value, lin.q?.method], [14, 'linear']);
    const clamped = feed({ rules: [{ field: 'x', impute: 'linear', max: 13, ...noChecks }] }, [10, 12, null])
      .out[2];
    assert.equal(clamped.value, 13);
    const one = feed({ rules: [{ field: 'x', impute: 'linear', ...noChecks }] }, [10, null]).out[1];
    assert.equal(one.value, 10); // one good value: carried forward
  });

  it('no history: null is flagged missing; a field the device never sent is not expected of it', () => {
    const first = feed({ rules: [{ field: 'x' }] }, [null, undefined]).out;
    assert.deepEqual([first[0].value, first[0].q?.flag, first[1].q?.flag], [null, 'missing', 'missing']);
    const never = feed({ rules: [{ field: 'x' }] }, [undefined]).out[0];
    assert.deepEqual([never.value, never.q], [undefined, undefined]);
    const off = feed({ rules: [{ field: 'x', impute: 'none' }] }, [1, null]).out[1];
    assert.match(off.q!.reason, /imputation is off/);
  });

  it('a field refused upstream (in msg.quality, absent from the payload) counts as missing', () => {
    const q = new QualityEngine();
    q.process('d', 't', T0, { y: 3 });
    const p: Record<string, unknown> = {};
    const o = q.process('d', 't', T0 + S, p, { y: { flag: 'bad' } });
    assert.deepEqual([p.y, o.quality?.y.flag], [3, 'imputed']);
  });

  it('never produces NaN: equal values, nulls, first readings, replacements', () => {
    const { out } = feed({ rules: [{ field: 'x', impute: 'linear', replaceWith: 'linear', maxRate: 0.1 }] }, [
      null,
      5,
      5,
      5,
      5,
      5,
      5,
      5,
      9,
      null,
      5,
      undefined,
      100,
      5,
    ]);
    for (const o of out)
      assert.ok(o.value === undefined || o.value === null || Number.isFinite(o.value), String(o.value));
  });
});

describe('gaps', () => {
  const opts = {
    rules: [{ field: 'x', ...noChecks }],
    expectedIntervalMs: 10 * S,
    fillGaps: true,
    maxFill: 3,
  };

  it('counts missing slots and fills them at last + k·interval, interpolated and flagged', () => {
    const q = new QualityEngine(opts);
    q.process('d', 't', T0, { x: 0 });
    const o = q.process('d', 't', T0 + 40 * S, { x: 30 });
    assert.equal(o.gapSlots, 3);
    assert.deepEqual(
      o.fills?.map((f) => [
        f.timestamp - T0,
        f.payload.x,
        f.quality.x.flag,
        f.quality.x.code,
        f.quality.x.method,
      ]),
      [
        [10 * S, 7.5, 'imputed', 9, 'interpolated'],
        [20 * S, 15, 'imputed', 9, 'interpolated'],
        [30 * S, 22.5, 'imputed', 9, 'interpolated'],
      ],
    );
  });

  it('a gap longer than maxFill is only counted', () => {
    const q = new QualityEngine(opts);
    q.process('d', 't', T0, { x: 0 });
    const o = q.process('d', 't', T0 + 50 * S, { x: 30 });
    assert.deepEqual([o.gapSlots, o.fills], [4, undefined]);
    const [card] = q.scorecard('d');
    assert.deepEqual([card.readings, card.gapSlots, card.completeness], [2, 4, 0.33]);
  });
});

describe('actions and scorecard', () => {
  it('reject: the outcome names the field and check', () => {
    const q = new QualityEngine({ rules: [{ field: 'x', max: 10, rangeAction: 'reject' }] });
    const o = q.process('d', 't', T0, { x: 11, y: 1 });
    assert.deepEqual({ ...o.rejected, reason: undefined }, { field: 'x', check: 'range', reason: undefined });
    assert.equal(q.scorecard('d')[0].rejected, 1);
  });

  it('scorecard: readings, % flagged per check, % imputed', () => {
    const { q } = feed({ rules: [{ field: 'x', max: 100, ...noChecks }] }, [1, 200, 3, null]);
    const [c] = q.scorecard();
    assert.equal(c.device, 'd1');
    assert.deepEqual(
      [c.readings, c.values, c.flaggedPct.range, c.missingPct, c.imputedPct],
      [4, 3, 33.33, 25, 25],
    );
    assert.deepEqual([c.firstTs, c.lastTs, c.completeness], [T0, T0 + 3 * S, null]);
  });

  it('strings and booleans pass untouched; fields beyond maxFields pass unchecked', () => {
    const q = new QualityEngine({ maxFields: 2 });
    const p = { on: true, name: 'x', a: 1, b: 2, c: 1e9 };
    assert.equal(q.process('d', 't', T0, p).quality, undefined);
    assert.deepEqual([...q.untracked], ['c']);
  });
});

describe('rules', () => {
  it('presets fill what the rule leaves blank', () => {
    const r = resolveRule('t', { field: 't', preset: 'temperature', max: 50, spikeK: '' });
    assert.deepEqual([r.min, r.max, r.spikeK, r.maxRate, r.flatMs], [-40, 50, 3, 0.5, 3_600_000]);
    assert.ok(Object.keys(PRESETS).includes('power'));
  });

  it('reports configuration mistakes with the field', () => {
    assert.throws(() => resolveRule('t', { field: 't', min: 'abc' }), RuleError);
    assert.throws(() => resolveRule('t', { field: 't', min: 5, max: 1 }), /min \(5\) is above max \(1\)/);
    assert.throws(
      () => resolveRule('t', { field: 't', spikeAction: 'drop' as never }),
      /spikeAction must be one of/,
    );
    assert.throws(() => new QualityEngine({ rules: [{ field: 'a' }, { field: 'a' }] }), /two rules/);
  });

  it('knows only its own presets, not the names every object inherits', () => {
    for (const preset of ['toString', '__proto__', 'constructor', 'hasOwnProperty'])
      assert.throws(
        () => resolveRule('t', { field: 't', preset }),
        new RegExp(`field "t": unknown preset "${preset}"`),
      );
  });

  it('maps flags to OPC UA status codes', () => {
    assert.equal(opcUaStatus(undefined).code, 0);
    assert.equal(
      opcUaStatus({ flag: 'bad', code: 4, check: 'range', raw: 1, reason: '' }).name,
      'BadOutOfRange',
    );
    assert.equal(
      opcUaStatus({ flag: 'imputed', code: 9, check: 'missing', method: 'locf', raw: null, reason: '' }).code,
      0x40900000,
    );
    assert.equal(
      opcUaStatus({ flag: 'missing', code: 9, check: 'missing', raw: null, reason: '' }).name,
      'BadNoData',
    );
  });
});

describe('state store', () => {
  it('a serialized and restored store continues exactly where the original would', () => {
    const opts = { rules: [{ field: 'x', maxRate: 5 }], expectedIntervalMs: S };
    const a = new QualityEngine(opts);
    const values = [1, 2, 3, 2, 1, 2, 3, 2, 50, 2];
    values.forEach((v, i) => a.process('d', 't', T0 + i * S, { x: v }));
    const bytes = a.store.serialize(a.fields);
    const { store, fieldNames } = MemoryStateStore.deserialize(bytes, 7, 16);
    const b = new QualityEngine({ ...opts, store, fieldNames });
    for (let i = 10; i < 20; i++) {
      const pa = { x: i % 3 === 0 ? 40 : 2 };
      const pb = { ...pa };
      assert.deepEqual(
        b.process('d', 't', T0 + i * S, pb).quality,
        a.process('d', 't', T0 + i * S, pa).quality,
      );
      assert.deepEqual(pb, pa);
    }
    assert.deepEqual(b.scorecard(), a.scorecard());
  });

  it('refuses corrupt, truncated or mismatched snapshots with a reason', () => {
    const a = new QualityEngine();
    a.process('d', 't', T0, { x: 1 });
    const bytes = Buffer.from(a.store.serialize(a.fields));
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3] ^= 0xff;
    assert.throws(() => MemoryStateStore.deserialize(flipped, 7, 16), /checksum/);
    assert.throws(
      () => MemoryStateStore.deserialize(bytes.subarray(0, bytes.length - 5), 7, 16),
      /truncated|checksum/,
    );
    assert.throws(
      () => MemoryStateStore.deserialize(Buffer.from('garbage'), 7, 16),
      /not a quality state file/,
    );
    assert.throws(() => MemoryStateStore.deserialize(bytes, 9, 16), /window/);
  });

  it('evicts devices idle past the TTL and reuses their records', () => {
    const q = new QualityEngine();
    q.process('old', 't', T0, { x: 1, y: 2 }, undefined, 1000);
    q.process('new', 't', T0, { x: 1 }, undefined, 5000);
    assert.equal(q.store.evictIdle(2000), 1);
    assert.deepEqual([q.store.deviceCount, q.store.fieldCount], [1, 1]);
    q.process('again', 't', T0, { x: 1, y: 2 }, undefined, 6000);
    assert.equal(q.store.fieldCount, 3);
    assert.equal(q.scorecard('again')[0].readings, 1);
  });
});
