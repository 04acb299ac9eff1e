/**
 * Memory budget: 100,000 devices x 5 fields with the default window (7) must fit in 200 bytes per device-field,
 * everything included (typed-array records with their growth room, the device id map and the id strings).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { QualityEngine } from '../../nodes/lib/quality/engine';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
/**
 * A full collection whose sweeping is finished: V8 sweeps concurrently, and on a busy machine `heapUsed` right
 * after one forced GC can still count garbage of not yet swept pages. The second collection completes the first.
 */
function gc(): void {
  collect();
  collect();
}

const FIELDS = ['temperature', 'humidity', 'pressure', 'voltage', 'current'];
const BUDGET = 200;

describe('memory', () => {
  it(`100,000 devices x 5 fields stay within ${BUDGET} bytes per device-field`, () => {
    gc();
    const before = process.memoryUsage();
    const q = new QualityEngine({ rules: FIELDS.map((field) => ({ field })) });
    for (let i = 0; i < 100_000; i++) {
      const p: Record<string, number> = {};
      for (const f of FIELDS) p[f] = i % 100;
      for (let r = 0; r < 8; r++)
        q.process(
          `device-${String(i).padStart(6, '0')}`,
          'sensor',
          1_700_000_000_000 + r * 1000,
          p,
          undefined,
          0,
        );
    }
    gc();
    const after = process.memoryUsage();
    const perField =
      (after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers) /
      (100_000 * FIELDS.length);
    console.log(
      `100,000 devices x 5 fields: ${perField.toFixed(1)} bytes per device-field measured; ` +
        `typed-array records ${(q.store.slabBytes / 500_000).toFixed(1)} incl. growth room`,
    );
    assert.equal(q.store.fieldCount, 500_000);
    assert.ok(perField <= BUDGET, `${perField} bytes per device-field`);
  });
});
