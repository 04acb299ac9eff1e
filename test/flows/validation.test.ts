import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { shippedFlow } from '../support/backend';

/**
 * flows/validation.json in a real node-red process. Shipped as is, except that its injects fire once at start
 * and its debug nodes also write to the log, so the test can read what left each output.
 */
describe('flows/validation.json in a real node-red process', () => {
  let nr: NodeRedProcess;
  before(async () => {
    const flow = shippedFlow('validation.json');
    let delay = 0.5;
    for (const n of flow) {
      if (n.type === 'inject') Object.assign(n, { once: true, onceDelay: (delay += 0.2) });
      if (n.type === 'debug') n.console = true;
    }
    nr = await startNodeRed({ flows: flow });
  });
  after(() => nr.stop());

  it('passes valid readings and rejects the bad ones with their reasons', async () => {
    await nr.waitForOutput(/\[debug:valid\]\s*\{\s*payload: \{ temperature: 21\.5, humidity: 40 \}/);
    await nr.waitForOutput(/temperature must be <= 150 \(got 999\)/);
    await nr.waitForOutput(/looks like seconds, not milliseconds/);
    await nr.waitForOutput(/reading 1: temperature must be a number \(got "warm"\)/);
    await nr.waitForOutput(/reading 2: humidity must be <= 100 \(got 101\)/);
    await nr.waitForOutput(/payload is not valid JSON: .* at line 1 column 22/);
    await nr.waitForOutput(/reading id "reading-42" was already accepted from this device for another reading/);
    const log = nr.proc.output();
    assert.doesNotMatch(log, /\[error\]/);
    // The batch's two good readings left together in one message.
    assert.match(log, /payload: \[ \{ temperature: 20 \}, \{ temperature: 23 \} \]/);
  });
});
