/**
 * A reconnect storm with the broker's default limits: 1,000 reference devices behind one address (127.0.0.1)
 * connect at once and again after a broker restart, while a client from the same address guesses one device's
 * token. How long the reconnect takes is measured in bench/reconnect.ts (the limiter's arithmetic for 10 s is
 * test/unit/broker-limits.test.ts); here: everyone gets back and the guesser is locked out, before and after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../../nodes/lib/broker/broker';
import {
  connectFleet,
  rateLimitedCount,
  startFleetBroker,
  type Fleet,
  type FleetBroker,
} from '../support/device-fleet';
import { refusalCode } from '../support/mqtt-device';
import { eventually } from '../support/servers';

describe("the reference client's ready() when the rate limit drops its first attempt", () => {
  it('resolves once the retry connects (1 connect/s per address, no queue, three devices at once)', async () => {
    const limits = { connectRatePerIp: 1, connectBurstPerIp: 1, connectQueueMs: 0 };
    const { fleet: fb, tokens } = await startFleetBroker(3, limits);
    const { fleet, ready } = connectFleet(fb.url, tokens);
    try {
      await ready;
      assert.equal(fleet.lastConnect.size, 3);
      assert.ok(rateLimitedCount(fb.security) >= 1, 'first attempts were dropped');
    } finally {
      await fleet.stop();
      await fb.close();
    }
  });
});

const DEVICES = 1000;
const VICTIM = 'dev-0';

/**
 * CONNACK codes of `attempts` CONNECTs as `VICTIM` with `password` from 127.0.0.1; a connection the rate limit
 * drops before any CONNACK (a string code: 'CLOSED', 'ECONNRESET') is tried again, as a real guesser would.
 */
async function guess(url: string, password: string, attempts: number): Promise<(number | string)[]> {
  const codes: (number | string)[] = [];
  let dropped = 0;
  while (codes.length < attempts) {
    const code = await refusalCode(url, { clientId: VICTIM, username: VICTIM, password });
    if (typeof code === 'string' && ++dropped < 1000) continue; // dropped before a CONNACK
    codes.push(code);
  }
  return codes;
}

describe('reconnect storm: 1,000 devices behind one address, default limits', () => {
  let fb: FleetBroker;
  let tokens: Map<string, string>;
  let fleet: Fleet | undefined;

  before(async () => {
    ({ fleet: fb, tokens } = await startFleetBroker(DEVICES));
  });

  after(async () => {
    await fleet?.stop();
    await fb.close();
  });

  it('admits all 1,000 at once: ready() resolves for every device', async () => {
    const started = connectFleet(fb.url, tokens);
    fleet = started.fleet;
    await started.ready;
    assert.equal(fleet.lastConnect.size, DEVICES);
  });

  it('locks out a client guessing a token from the same address, the right token included, with others connecting', async () => {
    const codes = await guess(fb.url, 'not-the-token', DEFAULT_LIMITS.lockoutThreshold + 1);
    assert.deepEqual(codes, [...Array<number>(DEFAULT_LIMITS.lockoutThreshold).fill(4), 3]);
    assert.deepEqual(
      await guess(fb.url, tokens.get(VICTIM)!, 1),
      [3],
      'locked: even the right token is refused',
    );
    assert.ok(
      fb.security.some((e) => e.event === 'lockout' && e.deviceId === VICTIM && e.ip === '127.0.0.1'),
    );
  });

  it('gets all 1,000 back after a broker restart while the guesser is locked out again', async () => {
    const f = fleet!;
    // The victim's own client would clear the lockout with its right token: only the guesser uses that id.
    await f.clients.find((c) => c.deviceId === VICTIM)!.stop();
    await fb.restart();
    const restartedAt = Date.now();
    const guesses = guess(fb.url, 'still-not-the-token', DEFAULT_LIMITS.lockoutThreshold + 1);
    const back = await eventually(
      () => `${DEVICES - 1} devices to reconnect (${f.connectedSince(restartedAt)} so far)`,
      () => (f.connectedSince(restartedAt) === DEVICES - 1 ? Date.now() - restartedAt : undefined),
      60_000,
    );
    assert.deepEqual(await guesses, [...Array<number>(DEFAULT_LIMITS.lockoutThreshold).fill(4), 3]);
    console.log(
      `# ${DEVICES - 1} devices reconnected ${back} ms after the restart (timing: bench/reconnect.ts)`,
    );
  });
});
