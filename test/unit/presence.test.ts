import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PresenceTracker } from '../../nodes/lib/presence';

describe('PresenceTracker', () => {
  it('reports a device online when first seen and offline after the heartbeat timeout', () => {
    const t = new PresenceTracker(1000);
    assert.deepEqual(t.seen('a', 0), { deviceId: 'a', online: true, at: 0, reason: 'seen' });
    assert.equal(t.seen('a', 500), undefined);
    assert.deepEqual(t.sweep(1400), []);
    assert.deepEqual(t.sweep(1500), [
      { deviceId: 'a', online: false, at: 1500, reason: 'heartbeat timeout' },
    ]);
    assert.deepEqual(t.sweep(5000), [], 'an offline device is not reported twice');
    assert.equal(t.seen('a', 6000)?.online, true);
  });

  it('keeps a device with a broker session online without heartbeats until it disconnects', () => {
    const t = new PresenceTracker(1000);
    assert.equal(t.connected('b', 0)?.reason, 'connected');
    assert.deepEqual(t.sweep(10_000), []);
    assert.deepEqual(t.disconnected('b', 10_001), {
      deviceId: 'b',
      online: false,
      at: 10_001,
      reason: 'disconnected',
    });
    assert.equal(t.disconnected('b', 10_002), undefined);
  });

  it('ignores a late message for last-seen and sweeps in last-seen order', () => {
    const t = new PresenceTracker(100);
    t.seen('x', 0);
    t.seen('y', 50);
    t.seen('x', 120);
    t.seen('x', 10); // back-filled reading: older than what we know
    assert.equal(t.get('x')?.lastSeen, 120);
    assert.deepEqual(
      t.sweep(160).map((c) => c.deviceId),
      ['y'],
    );
  });

  it('restores last-seen as offline and stays within its device bound', () => {
    const t = new PresenceTracker(100, 2);
    t.restore({ a: { lastSeen: 5 }, b: { lastSeen: 'bad' } });
    assert.deepEqual(t.get('a'), { online: false, lastSeen: 5, connected: false });
    assert.equal(t.get('b'), undefined);
    t.seen('c', 10);
    t.seen('d', 11);
    assert.equal(t.size, 2);
    assert.equal(t.get('a'), undefined, 'the offline device is forgotten first');
  });

  it('counts the devices online through every change, including a forgotten online device', () => {
    const t = new PresenceTracker(100, 2);
    t.seen('a', 0);
    t.connected('b', 1);
    t.seen('b', 2);
    assert.equal(t.online, 2);
    t.seen('c', 3); // full: a, online and seen longest ago without a session, is forgotten
    assert.equal(t.get('a'), undefined);
    assert.equal(t.online, 2);
    t.sweep(103);
    assert.equal(t.online, 1, 'c timed out, b keeps its session');
    t.disconnected('b', 104);
    assert.equal(t.online, 0);
  });

  it('marks every device of a micro-batch seen, each coming online once', () => {
    const t = new PresenceTracker(100);
    t.seen('a', 0);
    const batch = [{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'b' }, { id: 42 }, null];
    assert.deepEqual(
      t.seenIn(batch, 50).map((c) => c.deviceId),
      ['b', 'c'],
      'a was online already; b twice in the batch comes online once; no id, no device',
    );
    assert.equal(t.get('a')?.lastSeen, 50);
    assert.equal(t.online, 3);
    assert.deepEqual(
      t.seenIn({ id: 'd' }, 60)[0]?.reason,
      'seen',
      'one device as msg.device of one publication',
    );
    assert.deepEqual(t.seenIn(undefined, 70), []);
  });
});
