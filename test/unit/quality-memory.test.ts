/**
 * Memory budget: 100,000 devices x 5 fields with the default window (7) must fit in 200 bytes per device-field,
 * everything included (typed-array records with their growth room, the device ids). Asserted on the store's
 * own byte count, which does not depend on when the garbage collector runs; bench/quality.ts measures the heap
 * and prints both figures side by side.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QualityEngine } from '../../nodes/lib/quality/engine';

const FIELDS = ['temperature', 'humidity', 'pressure', 'voltage', 'current'];
const BUDGET = 200;

describe('memory', () => {
  it(`100,000 devices x 5 fields stay within ${BUDGET} bytes per device-field`, () => {
    const q = new QualityEngine({ rules: FIELDS.map((field) => ({ field })) });
    const p: Record<string, number> = {};
    for (let i = 0; i < 100_000; i++) {
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
    const bytesAfterFirstPass = q.store.bytes;
    // More readings of the same devices hold no more state.
    for (let i = 0; i < 100_000; i++)
      q.process(`device-${String(i).padStart(6, '0')}`, 'sensor', 1_700_000_010_000, p, undefined, 0);
    assert.equal(q.store.fieldCount, 500_000);
    assert.equal(q.store.bytes, bytesAfterFirstPass);
    const perField = q.store.bytes / (100_000 * FIELDS.length);
    assert.ok(perField <= BUDGET, `${perField.toFixed(1)} bytes per device-field`);
    assert.ok(q.store.slabBytes < q.store.bytes, 'the ids are counted');
  });
});
