/**
 * Determinism: a fixed input sequence (test/fixtures/quality/readings.json) gives exactly the output recorded in
 * expected.json — every value, flag, reason, filled reading and the scorecards — also when the state is saved and
 * restored half way. Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { format } from 'prettier';
import { QualityEngine, type QualityOptions } from '../../nodes/lib/quality/engine';
import { MemoryStateStore } from '../../nodes/lib/quality/state';
import { repoRoot } from '../support/servers';

const dir = join(repoRoot, 'test', 'fixtures', 'quality');
const input = JSON.parse(readFileSync(join(dir, 'readings.json'), 'utf8')) as {
  options: QualityOptions;
  readings: { device: string; type: string; ts: number; payload: Record<string, unknown> }[];
};

function run(restoreAt = -1): unknown {
  let q = new QualityEngine(input.options);
  const out = input.readings.map((r, i) => {
    if (i === restoreAt) {
      const { store, fieldNames } = MemoryStateStore.deserialize(q.store.serialize(q.fields), 7, 16);
      q = new QualityEngine({ ...input.options, store, fieldNames });
    }
    const payload = structuredClone(r.payload);
    const o = q.process(r.device, r.type, r.ts, payload, undefined, 0);
    return {
      i,
      payload,
      quality: o.quality ?? null,
      rejected: o.rejected ?? null,
      gapSlots: o.gapSlots,
      fills: o.fills ?? null,
    };
  });
  return JSON.parse(JSON.stringify({ out, scorecard: q.scorecard() }));
}

describe('golden file', () => {
  it('the fixed input gives the recorded output', async () => {
    const got = run();
    const file = join(dir, 'expected.json');
    if (process.env.UPDATE_GOLDEN === '1')
      writeFileSync(file, await format(JSON.stringify(got), { parser: 'json', filepath: file }));
    assert.deepEqual(got, JSON.parse(readFileSync(file, 'utf8')));
  });

  it('saving and restoring the state half way changes nothing', () => {
    assert.deepEqual(run(Math.floor(input.readings.length / 2)), run());
  });
});
