/**
 * The benchmark harness (bench/support/node-red-rate.ts) measures what it says: it runs every case and the
 * pass-through in one embedded Node-RED runtime, counts completions of the node under test (also errors), and
 * derives the ratio from the medians. Rates themselves are not asserted: timing belongs in bench/.
 * Uses core Node-RED nodes as the nodes under test, so it does not depend on any node of this package.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { builtNode, measureNodeRates, type RateResult } from '../../bench/support/node-red-rate';

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

describe('bench harness: messages/s of a node next to a pass-through node', () => {
  it('measures each case and the pass-through in alternating rounds and counts errors', async () => {
    const benchDirsBefore = readdirSync(tmpdir()).filter((d) => d.startsWith('iotb-node-red-rate-'));
    const seen: number[] = [];
    const result: RateResult = await measureNodeRates({
      modules: [builtNode('metrics')],
      rounds: 3,
      warmupRounds: 1,
      roundMs: 150,
      window: 50,
      failOnError: false,
      // The throwing case logs every error: keep the test output readable.
      settings: { logging: { console: { level: 'off' } } },
      cases: [
        {
          name: 'function: return msg',
          node: { type: 'function', func: 'return msg;', outputs: 1 },
          message: (i) => {
            seen.push(i);
            return { payload: i };
          },
        },
        {
          name: 'function: throws on odd payloads',
          node: {
            type: 'function',
            func: 'if (msg.payload % 2) throw new Error("odd"); return msg;',
            outputs: 1,
          },
          message: (i) => ({ payload: i }),
        },
        {
          // A pipeline: the message counts (and errs) where the last node completes it.
          name: 'pipeline: pass, then throw on odd payloads',
          node: { type: 'function', func: 'msg.first = true; return msg;', outputs: 1 },
          then: [
            {
              node: {
                type: 'function',
                func: 'if (!msg.first || msg.payload % 2) throw new Error("odd"); return msg;',
                outputs: 1,
              },
            },
          ],
          window: 4,
          message: (i) => ({ payload: i }),
        },
      ],
    });

    assert.match(result.nodeRed, /^\d+\.\d+\.\d+/);
    assert.equal(result.passThrough.rounds.length, 3);
    assert.equal(result.passThrough.errors, 0);
    assert.equal(result.passThrough.median, median(result.passThrough.rounds));
    const [plain, throwing, pipeline] = result.cases;
    for (const c of result.cases) {
      assert.equal(c.rounds.length, 3, c.name);
      assert.ok(
        c.rounds.every((r) => Number.isFinite(r) && r > 0),
        `${c.name}: ${c.rounds.join(' ')}`,
      );
      assert.equal(c.median, median(c.rounds));
      assert.equal(c.ratio, c.median / result.passThrough.median);
    }
    assert.equal(plain.errors, 0);
    assert.ok(throwing.errors > 0, 'errors of done(err) not counted');
    assert.ok(pipeline.errors > 0, "completions of a pipeline's last node not counted");
    // Each round numbers its messages from 0; the pass-through takes the first case's messages too:
    // (1 warm-up + 3 rounds) x (first case + pass-through).
    assert.equal(seen.filter((i) => i === 0).length, 8);
    const benchDirsAfter = readdirSync(tmpdir()).filter((d) => d.startsWith('iotb-node-red-rate-'));
    assert.deepEqual(benchDirsAfter, benchDirsBefore, 'temp user dir left behind');
  });
});
