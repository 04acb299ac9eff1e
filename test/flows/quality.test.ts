import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { shippedFlow } from '../support/backend';

/**
 * flows/quality.json as shipped, with two test-only changes: the simulated sensor ticks every 50 ms instead
 * of 500 ms, and the "flagged / imputed" debug node also prints to the console, where the test reads it.
 */
describe('flows/quality.json in a real node-red process', () => {
  let nr: NodeRedProcess;
  before(async () => {
    const flows = shippedFlow('quality.json');
    for (const n of flows) {
      if (n.id === 'q1.tick') n.repeat = '0.05';
      if (n.id === 'q1.flags') n.console = true;
    }
    nr = await startNodeRed({ flows });
  });
  after(() => nr.stop());

  it('shows the injected faults as flags: spike replaced, missing imputed, stuck sensor, dropout filled', async () => {
    await nr.waitForOutput(/check: 'spike',[\s\S]*?method: 'median'/);
    await nr.waitForOutput(/check: 'missing',[\s\S]*?method: 'median'/);
    await nr.waitForOutput(/check: 'flatline'/);
    const filled = await nr.waitForOutput(/imputed: true/);
    assert.ok(filled);
    assert.doesNotMatch(nr.proc.output(), /\[error\]/);
  });
});
