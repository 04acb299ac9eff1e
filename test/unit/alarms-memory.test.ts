/**
 * Memory budget: alarm state for 100,000 devices × 5 rules with no open alarm fits in 300 bytes per
 * (device, rule), everything included (per-rule state, the device map and the id strings). Asserted on the
 * engine's own count (`stateBytes`), which does not depend on when the garbage collector runs; bench/alarms.ts
 * measures the heap and prints both figures side by side.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlarmEngine } from '../../nodes/lib/alarms/engine';
import { compileRules } from '../../nodes/lib/alarms/rules';

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
    const e = new AlarmEngine(rules);
    const reading = { temperature: -18, door: 'closed', battery: 90 };
    const pass = (t: number): void => {
      for (let i = 0; i < 100_000; i++)
        e.reading(
          `device-${String(i).padStart(6, '0')}`,
          'freezer',
          1_700_000_000_000 + t * 400_000,
          reading,
        );
    };
    pass(0);
    const afterFirstPass = e.stateBytes;
    pass(1);
    pass(2);
    assert.equal(e.deviceCount, 100_000);
    assert.equal(e.list().length, 0, 'no alarm is open');
    assert.equal(e.stateBytes, afterFirstPass, 'more readings of the same devices hold no more state');
    const perDeviceRule = e.stateBytes / (100_000 * rules.length);
    assert.ok(perDeviceRule <= BUDGET, `${perDeviceRule.toFixed(0)} bytes per (device, rule)`);
  });
});
