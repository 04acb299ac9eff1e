import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { shippedFlow } from '../support/backend';

/**
 * flows/alarms.json as shipped, with test-only changes: the freezer ticks every 50 ms instead of 1 s, the
 * warm rule waits 1 s instead of 20 s and the silent rule 2 s instead of 30 s, and the transitions debug
 * node also prints to the console, where the test reads it.
 */
describe('flows/alarms.json in a real node-red process', () => {
  let nr: NodeRedProcess;
  before(async () => {
    const flows = shippedFlow('alarms.json');
    for (const n of flows) {
      if (n.id === 'al.tick') n.repeat = '0.05';
      if (n.id === 'al.transitions') n.console = true;
      if (n.id === 'al.alarm') {
        n.tickS = 0.2;
        const [warm, silent] = n.rules as Record<string, unknown>[];
        warm.raiseForS = 1;
        silent.silentS = 2;
      }
    }
    nr = await startNodeRed({ flows });
  });
  after(() => nr.stop());

  it('raises and clears the warm alarm of the door-open round, and the absence alarm of the silent freezer', async () => {
    await nr.waitForOutput(/device: 'freezer-1',[\s\S]*?rule: 'freezer-warm',[\s\S]*?transition: 'raised'/);
    await nr.waitForOutput(/device: 'freezer-1',[\s\S]*?rule: 'freezer-warm',[\s\S]*?transition: 'cleared'/);
    await nr.waitForOutput(/device: 'freezer-2',[\s\S]*?rule: 'freezer-silent',[\s\S]*?transition: 'raised'/);
    assert.doesNotMatch(nr.proc.output(), /\[error\]/);
  });
});
