/**
 * CommandDispatcher on its own: a stand-in device link (test/support/fake-device-link.ts) plays the broker and
 * the device, and a fake clock drives every timeout, ttl and rate step, so each rule is checked at the exact
 * millisecond it applies. The same dispatcher against real brokers: test/integration/commands-*.test.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CommandDispatcher, type DispatcherOptions } from '../../nodes/lib/commands/dispatcher';
import type { CommandRecord, CommandState } from '../../nodes/lib/commands/states';
import { RejectionError } from '../../nodes/lib/rejection';
import { FakeClock } from '../support/fake-clock';
import { FakeDeviceLink } from '../support/fake-device-link';
import { thermostatDirectory, type MemoryDirectory } from '../support/memory-directory';
import { tempDir } from '../support/servers';

const TIMEOUT_MS = 30_000;
const TTL_MS = 3_600_000;

describe('CommandDispatcher', () => {
  let dir: { path: string; remove(): void };
  let clock: FakeClock;
  let link: FakeDeviceLink;
  let directory: MemoryDirectory;
  const open: CommandDispatcher[] = [];

  function dispatcher(extra: Partial<DispatcherOptions> = {}): CommandDispatcher {
    const d = new CommandDispatcher({
      link,
      directory,
      logFile: join(dir.path, 'commands.jsonl'),
      timeoutMs: TIMEOUT_MS,
      ttlMs: TTL_MS,
      queueBound: 100,
      ratePerSecond: 100,
      clock,
      ...extra,
    });
    open.push(d);
    return d;
  }

  /** The states a command went through, in order. */
  const states = (r: CommandRecord | undefined): CommandState[] => (r?.history ?? []).map((h) => h.state);

  function refusalCode(fn: () => unknown): string {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof RejectionError, String(err));
      return err.rejection.code;
    }
    assert.fail('expected a refusal');
  }

  beforeEach(() => {
    dir = tempDir('dispatcher');
    clock = new FakeClock();
    link = new FakeDeviceLink();
    directory = thermostatDirectory('d1', 'd2');
  });

  afterEach(() => {
    for (const d of open.splice(0)) d.close();
    dir.remove();
  });

  it('sends at once to a subscribed device: QUEUED, SENT, and the payload the device receives', () => {
    link.subscribe('d1');
    const d = dispatcher();
    const r = d.submit({ deviceId: 'd1', name: 'set-interval', params: { intervalMs: 5000 }, id: 'c1' });
    assert.deepEqual(states(r), ['QUEUED', 'SENT']);
    assert.equal(r.sentAt, clock.now());
    assert.deepEqual(link.published, [
      {
        deviceId: 'd1',
        subtopic: 'commands',
        qos: 1,
        payload: JSON.stringify({
          id: 'c1',
          name: 'set-interval',
          params: { intervalMs: 5000 },
          expiresAt: clock.now() + TTL_MS,
        }),
      },
    ]);
  });

  it('keeps commands QUEUED until the device subscribes, then sends them in submission order', () => {
    const d = dispatcher();
    for (const id of ['a', 'b', 'c']) d.submit({ deviceId: 'd1', name: 'reboot', id });
    assert.deepEqual(link.published, []);
    assert.deepEqual(d.stats(), { queued: 3, inFlight: 0, tracked: 3 });
    link.subscribe('d1');
    assert.deepEqual(link.commandIds('d1'), ['a', 'b', 'c']);
    assert.deepEqual(d.stats(), { queued: 0, inFlight: 3, tracked: 3 });
  });

  it('follows PUBACK and the final ack: DELIVERED, then SUCCEEDED with the result, one final event', () => {
    link.subscribe('d1');
    const d = dispatcher();
    const finals: CommandRecord[] = [];
    d.on('final', (r) => finals.push(r));
    const r = d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    link.deliver('d1', 'c1');
    link.ack('d1', { id: 'c1', status: 'accepted' });
    link.ack('d1', { id: 'c1', status: 'succeeded', result: { uptime: 0 } });
    assert.deepEqual(states(r), ['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED']);
    assert.deepEqual(r.result, { uptime: 0 });
    assert.equal(finals.length, 1);
    assert.equal(clock.pending, 0, 'a final command leaves no timer behind');
  });

  it('times a command out exactly timeoutMs after sending, not a millisecond earlier', () => {
    link.subscribe('d1');
    const d = dispatcher();
    const r = d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1', timeoutMs: 5000 });
    clock.advance(4999);
    assert.equal(r.state, 'SENT');
    clock.advance(1);
    assert.equal(r.state, 'TIMED_OUT');
    assert.equal(r.history.at(-1)?.at, r.sentAt! + 5000);
    assert.equal(r.history.at(-1)?.reason, 'no final ack within the timeout');
  });

  it('expires a command whose ttl passes while the device is away, and never sends it', () => {
    const d = dispatcher();
    const r = d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1', ttlMs: 60_000 });
    clock.advance(59_999);
    assert.equal(r.state, 'QUEUED');
    clock.advance(1);
    assert.equal(r.state, 'EXPIRED');
    link.subscribe('d1');
    assert.deepEqual(link.published, []);
  });

  it('sends at most ratePerSecond at once per device; the rest wait QUEUED for their token', () => {
    link.subscribe('d1');
    const d = dispatcher({ ratePerSecond: 2 });
    for (const id of ['a', 'b', 'c', 'd']) d.submit({ deviceId: 'd1', name: 'reboot', id });
    assert.deepEqual(link.commandIds('d1'), ['a', 'b']);
    clock.advance(499);
    assert.equal(link.published.length, 2);
    clock.advance(1); // one token per 500 ms
    assert.deepEqual(link.commandIds('d1'), ['a', 'b', 'c']);
    clock.advance(500);
    assert.deepEqual(link.commandIds('d1'), ['a', 'b', 'c', 'd']);
    // Another device has its own budget.
    link.subscribe('d2');
    d.submit({ deviceId: 'd2', name: 'reboot', id: 'e' });
    assert.deepEqual(link.commandIds('d2'), ['e']);
  });

  it('ignores and names every ack that does not move a command', () => {
    link.subscribe('d1');
    link.subscribe('d2');
    const d = dispatcher();
    const ignored: { id?: string; reason: string }[] = [];
    d.on('ignoredAck', (e) => ignored.push({ id: e.id, reason: e.reason }));
    d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    const done = d.submit({ deviceId: 'd1', name: 'reboot', id: 'c2' });
    link.ack('d1', { id: 'c2', status: 'succeeded' });
    link.subscribed.delete('d1');
    d.submit({ deviceId: 'd1', name: 'reboot', id: 'queued' });

    link.ack('d1', 'not json');
    link.ack('d1', 'null');
    link.ack('d1', { id: 'c1', status: 'maybe' });
    link.ack('d1', { id: 'nope', status: 'succeeded' });
    link.ack('d2', { id: 'c1', status: 'succeeded' });
    link.ack('d1', { id: 'queued', status: 'succeeded' });
    link.ack('d1', { id: 'c2', status: 'succeeded' });
    link.ack('d1', { id: 'c2', status: 'failed' });
    link.ack('d1', { id: 'c1', status: 'accepted' });
    link.ack('d1', { id: 'c1', status: 'accepted' });
    assert.deepEqual(ignored, [
      { id: undefined, reason: 'malformed' },
      { id: undefined, reason: 'malformed' },
      { id: 'c1', reason: 'malformed' },
      { id: 'nope', reason: 'unknown' },
      { id: 'c1', reason: 'wrong_device' },
      { id: 'queued', reason: 'not_sent' },
      { id: 'c2', reason: 'duplicate' },
      { id: 'c2', reason: 'late' },
      { id: 'c1', reason: 'duplicate' },
    ]);
    assert.equal(done.state, 'SUCCEEDED');
    assert.equal(d.get('c1')?.state, 'DELIVERED');
  });

  it('refuses with a code: duplicate id, full queue, unknown device, disallowed command', () => {
    const d = dispatcher({ queueBound: 2 });
    d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    assert.equal(
      refusalCode(() => d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' })),
      'DUPLICATE_ID',
    );
    d.submit({ deviceId: 'd1', name: 'reboot' });
    assert.equal(
      refusalCode(() => d.submit({ deviceId: 'd1', name: 'reboot' })),
      'QUEUE_FULL',
    );
    assert.equal(
      refusalCode(() => d.submit({ deviceId: 'zz', name: 'reboot' })),
      'UNKNOWN_DEVICE',
    );
    assert.equal(
      refusalCode(() => d.submit({ deviceId: 'd2', name: 'format-disk' })),
      'COMMAND_NOT_ALLOWED',
    );
    assert.equal(d.stats().tracked, 2, 'a refused command is not stored');
  });

  it('kill switch and safe mode cancel what is queued, refuse what comes, and survive a restart', () => {
    const d = dispatcher();
    const queued = d.submit({ deviceId: 'd1', name: 'reboot', id: 'q1' });
    const audit = d.setKillSwitch(true, 'maintenance', 'op');
    assert.equal(queued.state, 'CANCELED');
    assert.deepEqual(audit, {
      event: 'kill-switch',
      on: true,
      reason: 'maintenance',
      by: 'op',
      at: clock.now(),
      canceled: 1,
    });
    assert.equal(
      refusalCode(() => d.submit({ deviceId: 'd1', name: 'reboot' })),
      'KILL_SWITCH',
    );
    d.setKillSwitch(false);
    d.setSafeMode('d2', true);
    d.close();

    const again = dispatcher();
    assert.equal(again.killSwitch.on, false);
    assert.ok(again.safeMode('d2'));
    assert.equal(
      refusalCode(() => again.submit({ deviceId: 'd2', name: 'reboot' })),
      'SAFE_MODE',
    );
    assert.equal(again.submit({ deviceId: 'd1', name: 'reboot' }).state, 'QUEUED');
  });

  it('cancels the queued commands of a device that is revoked', () => {
    const d = dispatcher();
    const r = d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    directory.revoke('d1');
    assert.deepEqual(states(r), ['QUEUED', 'CANCELED']);
    assert.equal(r.history.at(-1)?.reason, 'device revoked');
  });

  it('re-sends a command in flight at a restart once the device is back, then times it out', () => {
    link.subscribe('d1');
    const first = dispatcher();
    first.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    first.close();
    link.subscribed.delete('d1');
    link.published.length = 0;

    clock.advance(10_000);
    const second = dispatcher();
    assert.equal(second.get('c1')?.state, 'SENT');
    assert.deepEqual(link.published, [], 'not re-sent while the device is away');
    link.subscribe('d1');
    assert.deepEqual(link.commandIds('d1'), ['c1']);
    const r = second.get('c1')!;
    assert.equal(r.attempts, 2);
    assert.equal(r.history.at(-1)?.reason, 're-sent after a restart');
    clock.advance(TIMEOUT_MS);
    assert.equal(r.state, 'TIMED_OUT');
  });

  it('reports a failed publish as an error and still ends the command by its timeout', async () => {
    link.subscribe('d1');
    link.failWith = new Error('broker gone');
    const d = dispatcher();
    const errors: Error[] = [];
    d.on('error', (err) => errors.push(err));
    const r = d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    await Promise.resolve(); // the publish promise settles
    assert.match(errors[0]?.message ?? '', /publishing command c1 to d1 failed: Error: broker gone/);
    clock.advance(TIMEOUT_MS);
    assert.equal(r.state, 'TIMED_OUT');
  });

  it('close stops every timer', () => {
    const d = dispatcher();
    d.submit({ deviceId: 'd1', name: 'reboot', id: 'c1' });
    link.subscribe('d2');
    d.submit({ deviceId: 'd2', name: 'reboot', id: 'c2' });
    assert.ok(clock.pending > 0);
    d.close();
    assert.equal(clock.pending, 0);
  });
});
