import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_FAULTS, SimulatedSensor, seededRandom } from '../../nodes/lib/simulated-signal';

describe('simulated sensor signal', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const run = (seed: number) => {
      const s = new SimulatedSensor(seed);
      return Array.from({ length: 200 }, (_, i) => s.next(i * 60_000));
    };
    assert.deepEqual(run(7), run(7));
    assert.notDeepEqual(run(7), run(8));
  });

  it('injects spikes, stuck periods, dropouts and missing values at roughly the configured rates', () => {
    const faults = { ...DEFAULT_FAULTS, spike: 0.05, stuck: 0.01, dropout: 0.01, missing: 0.02 };
    const s = new SimulatedSensor(42, faults);
    let silent = 0;
    let nulls = 0;
    let spikes = 0;
    let repeats = 0;
    let last: number | null = null;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const reading = s.next(i * 60_000);
      if (!reading) {
        silent++;
        continue;
      }
      const t = reading.temperature;
      if (t === null) nulls++;
      else if (Math.abs(t - 21) > 4 + 1.5) spikes++;
      if (t !== null && t === last) repeats++;
      last = t;
    }
    assert.ok(silent > n * 0.05, `dropouts: ${silent}`);
    assert.ok(nulls > n * 0.01, `missing: ${nulls}`);
    assert.ok(spikes > n * 0.02, `spikes: ${spikes}`);
    assert.ok(repeats > n * 0.05, `stuck repeats: ${repeats}`);
  });

  it('seededRandom stays in [0, 1)', () => {
    const r = seededRandom(1);
    for (let i = 0; i < 10_000; i++) {
      const v = r();
      assert.ok(v >= 0 && v < 1);
    }
  });
});
