/**
 * A seeded synthetic temperature signal (daily cycle + Gaussian noise, one reading a minute) with known injected
 * faults: spikes, a stuck period, a dropout and missing values. The engine must find the spikes (recall >= 0.95),
 * flag no more than 1% of clean points, flag the stuck period, and impute within the stated error of the true
 * signal (0.5 °C, five times the noise).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QualityEngine } from '../../nodes/lib/quality/engine';
import { gaussian, seededRandom } from '../../nodes/lib/simulated-signal';

const N = 6000;
const STEP = 60_000;
const T0 = 1_700_000_000_000;
const STUCK = { from: 2000, to: 2060 };
const DROPOUT = { from: 3000, to: 3005 };
const MAX_ERROR = 0.5;

function signal(seed: number) {
  const rnd = seededRandom(seed);
  const gauss = (): number => gaussian(rnd);
  const truth = Array.from({ length: N }, (_, i) => 20 + 3 * Math.sin((2 * Math.PI * i) / 1440));
  const observed: (number | null | 'dropped')[] = truth.map((x) => x + 0.1 * gauss());
  const spikes = new Set<number>();
  const nulls = new Set<number>();
  const blocked = (i: number): boolean =>
    i < 20 || (i >= STUCK.from - 10 && i < STUCK.to + 10) || (i >= DROPOUT.from - 10 && i < DROPOUT.to + 10);
  while (spikes.size < 120) {
    const i = Math.floor(rnd() * N);
    if (blocked(i) || [...spikes].some((s) => Math.abs(s - i) < 8)) continue;
    spikes.add(i);
    observed[i] = truth[i] + (rnd() < 0.5 ? -1 : 1) * (2 + 6 * rnd());
  }
  while (nulls.size < 60) {
    const i = Math.floor(rnd() * N);
    if (blocked(i) || spikes.has(i) || spikes.has(i - 1) || spikes.has(i + 1)) continue;
    nulls.add(i);
    observed[i] = null;
  }
  const stuckValue = observed[STUCK.from] as number;
  for (let i = STUCK.from; i < STUCK.to; i++) observed[i] = stuckValue;
  for (let i = DROPOUT.from; i < DROPOUT.to; i++) observed[i] = 'dropped';
  return { truth, observed, spikes, nulls };
}

describe('seeded synthetic signal with injected faults', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: finds the spikes, spares clean points, flags the stuck period, imputes within ${MAX_ERROR}`, () => {
      const { truth, observed, spikes, nulls } = signal(seed);
      const q = new QualityEngine({
        rules: [{ field: 't', preset: 'temperature', maxRate: '', flatCount: 10, maxGapS: 900 }],
        expectedIntervalMs: STEP,
        fillGaps: true,
      });
      let spikeHits = 0;
      let spikeFlags = 0;
      let cleanFlagged = 0;
      let clean = 0;
      let stuckFlagged = 0;
      const errors: number[] = [];
      let filled = 0;
      for (let i = 0; i < N; i++) {
        const v = observed[i];
        if (v === 'dropped') continue;
        const payload: Record<string, unknown> = { t: v };
        const o = q.process('sim', 'thermo', T0 + i * STEP, payload);
        const f = o.quality?.t;
        const out = payload.t as number;
        assert.ok(Number.isFinite(out), `reading ${i} produced ${String(out)}`);
        for (const fill of o.fills ?? []) {
          errors.push(Math.abs(fill.payload.t - truth[(fill.timestamp - T0) / STEP]));
          filled++;
        }
        if (f?.check === 'spike') spikeFlags++;
        if (spikes.has(i)) {
          if (f?.check === 'spike') {
            spikeHits++;
            errors.push(Math.abs(out - truth[i]));
          }
        } else if (nulls.has(i)) {
          assert.equal(f?.flag, 'imputed');
          errors.push(Math.abs(out - truth[i]));
        } else if (i >= STUCK.from && i < STUCK.to) {
          if (f?.check === 'flatline') stuckFlagged++;
        } else {
          clean++;
          if (f) cleanFlagged++;
        }
      }
      const recall = spikeHits / spikes.size;
      const precision = spikeHits / spikeFlags;
      const cleanRate = cleanFlagged / clean;
      const maxErr = Math.max(...errors);
      const meanErr = errors.reduce((a, b) => a + b, 0) / errors.length;
      const [card] = q.scorecard('sim');
      console.log(
        `seed ${seed}: spikes recall ${recall.toFixed(3)} precision ${precision.toFixed(3)}; ` +
          `clean points flagged ${(100 * cleanRate).toFixed(2)}% (${cleanFlagged}/${clean}); ` +
          `stuck flagged ${stuckFlagged}/${STUCK.to - STUCK.from}; gap slots ${card.gapSlots}, filled ${filled}; ` +
          `imputed/replaced error vs truth: mean ${meanErr.toFixed(3)}, max ${maxErr.toFixed(3)} (n=${errors.length})`,
      );
      assert.ok(recall >= 0.95, `recall ${recall}`);
      assert.ok(cleanRate <= 0.01, `clean flagged ${cleanRate}`);
      assert.equal(stuckFlagged, STUCK.to - STUCK.from - 9); // from the 10th identical reading on
      assert.equal(card.gapSlots, DROPOUT.to - DROPOUT.from);
      assert.equal(filled, DROPOUT.to - DROPOUT.from);
      assert.ok(maxErr <= MAX_ERROR, `max imputation error ${maxErr}`);
    });
  }
});
