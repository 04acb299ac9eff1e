/**
 * Memory budget: alarm state for 100,000 devices × 5 rules with no open alarm fits in 300 bytes per
 * (device, rule), everything included (per-rule state, the device map and the id strings).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AlarmEngine } from '../../nodes/lib/alarms/engine';
import { compileRules } from '../../nodes/lib/alarms/rules';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
/** Two full collections: the second completes the concurrent sweeping of the first (see quality-memory). */
function gc(): void {
  collect();
  collect();
}

const BUDGET = 300;

describe('alarm memory', () => {
  it(`100,000 devices × 5 rules stay within ${BUDGET} bytes per (device, rule)`, () => {
    const rules = compileRules([
      {
        name: 'warm',
        kind: 'threshold',
        raise: 'temperature > -10',
        clear: 'temperature < -12',
        raiseForS: 300,
      },
      { name: 'door', kind: 'threshold', raise: 'door == "open"', raiseForReadings: 3 },
      { name: 'silent', kind: 'absence', silentS: 3600 },
      { name: 'drain', kind: 'rate', field: 'battery', windowS: 600, raise: 'rate < -1' },
      { name: 'dq', kind: 'quality', windowS: 600, raise: 'share > 0.2' },
    ]);
    gc();
    const before = process.memoryUsage().heapUsed;
    const e = new AlarmEngine(rules);
    const reading = { temperature: -18, door: 'closed', battery: 90 };
    for (let t = 0; t < 3; t++)
      for (let i = 0; i < 100_000; i++)
        e.reading(
          `device-${String(i).padStart(6, '0')}`,
          'freezer',
          1_700_000_000_000 + t * 400_000,
          reading,
        );
    gc();
    const perDeviceRule = (process.memoryUsage().heapUsed - before) / (100_000 * rules.length);
    assert.equal(e.deviceCount, 100_000);
    assert.equal(e.list().length, 0, 'no alarm is open');
    assert.ok(perDeviceRule <= BUDGET, `${perDeviceRule.toFixed(0)} bytes per (device, rule)`);
  });
});
