import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckGate, type GatedPublication } from '../../nodes/lib/broker/ack-gate';
import { AckLedger } from '../../nodes/lib/ingest/ack-ledger';

/** A publication as the broker hands it over, recording what the gate does with it. */
interface Recorded extends GatedPublication {
  name: string;
  ackId?: number;
  released?: 'ack' | 'refused';
}

function setup(maxHeld = 10, timeoutMs = 1000) {
  let now = 0;
  const ledger = new AckLedger(() => now, 0);
  const gate = new AckGate({ maxHeld, timeoutMs }, ledger, () => now);
  const log: string[] = [];
  const publish = (name: string, connection: object, hold = true): Recorded => {
    const p: Recorded = {
      name,
      connection,
      hold,
      deliver: (id) => {
        p.ackId = id;
        log.push(`deliver ${name}`);
      },
      release: (err) => {
        p.released = err ? 'refused' : 'ack';
        log.push(`${p.released} ${name}`);
      },
    };
    gate.admit(p);
    return p;
  };
  return { ledger, gate, log, publish, at: (t: number) => void (now = t) };
}

describe('ack gate', () => {
  it('hands a held publication over at once and acknowledges it only when it is stored', () => {
    const { ledger, gate, log, publish } = setup();
    const a = publish('a', {});
    assert.deepEqual(log, ['deliver a']);
    assert.equal(gate.stats().held, 1);
    ledger.settle(a.ackId, 'stored');
    assert.deepEqual(log, ['deliver a', 'ack a']);
    assert.equal(gate.stats().held, 0);
  });

  it('lets a QoS 0 publication through without holding anything', () => {
    const { gate, log, publish } = setup();
    publish('q0', {}, false);
    assert.deepEqual(log, ['ack q0']);
    assert.equal(gate.stats().held, 0);
  });

  it('keeps the PUBACK order of one connection, and not across connections', () => {
    const { ledger, log, publish } = setup();
    const c1 = {};
    const c2 = {};
    const a = publish('a', c1);
    const b = publish('b', c1);
    const x = publish('x', c2);
    log.length = 0;
    ledger.settle(b.ackId, 'stored');
    ledger.settle(x.ackId, 'stored');
    assert.deepEqual(log, ['ack x']);
    ledger.settle(a.ackId, 'stored');
    assert.deepEqual(log, ['ack x', 'ack a', 'ack b']);
  });

  it('refuses a failed reading at once (the connection closes), and the later ones are not held up by it', () => {
    const { ledger, gate, log, publish } = setup();
    const c = {};
    const a = publish('a', c);
    const b = publish('b', c);
    log.length = 0;
    ledger.settle(b.ackId, 'stored');
    ledger.settle(a.ackId, 'failed');
    assert.deepEqual(log, ['ack b', 'refused a']);
    assert.equal(gate.stats().failures, 1);
    assert.equal(gate.stats().held, 0);
  });

  it('acknowledges a reading nobody stored after the timeout, and counts it', () => {
    const { ledger, gate, log, publish, at } = setup(10, 1000);
    publish('a', {});
    at(999);
    ledger.expire();
    assert.deepEqual(log, ['deliver a']);
    at(1000);
    ledger.expire();
    assert.deepEqual(log, ['deliver a', 'ack a']);
    assert.deepEqual(
      { timeouts: gate.stats().timeouts, lastTimeoutAt: gate.stats().lastTimeoutAt, held: gate.stats().held },
      { timeouts: 1, lastTimeoutAt: 1000, held: 0 },
    );
  });

  it('at the bound hands nothing over until held readings settle, then admits in arrival order', () => {
    const { ledger, gate, log, publish } = setup(2);
    const a = publish('a', {});
    const b = publish('b', {});
    publish('c', {});
    publish('q0', {}, false);
    publish('d', {});
    assert.deepEqual(log, ['deliver a', 'deliver b']);
    assert.deepEqual([gate.stats().held, gate.stats().waiting], [2, 3]);
    ledger.settle(a.ackId, 'stored');
    // a's slot goes to c; the QoS 0 publication behind it holds no ack but waits for room all the same.
    assert.deepEqual(log.slice(2), ['ack a', 'deliver c']);
    assert.deepEqual([gate.stats().held, gate.stats().waiting], [2, 2]);
    ledger.settle(b.ackId, 'stored');
    assert.deepEqual(log.slice(4), ['ack b', 'ack q0', 'deliver d']);
    assert.deepEqual([gate.stats().held, gate.stats().waiting], [2, 0]);
  });

  it('holds no more than the bound however long the burst', () => {
    const { ledger, gate, publish } = setup(100);
    const all: Recorded[] = [];
    for (let i = 0; i < 10_000; i++) all.push(publish(`p${i}`, {}));
    assert.equal(gate.stats().held, 100);
    let maxHeld = 0;
    for (let i = 0; i < all.length; i++) {
      ledger.settle(all[i].ackId, 'stored');
      maxHeld = Math.max(maxHeld, gate.stats().held);
    }
    assert.equal(maxHeld, 100);
    assert.ok(all.every((p) => p.released === 'ack'));
    assert.deepEqual([gate.stats().held, gate.stats().waiting, ledger.size], [0, 0, 0]);
  });

  it('on release refuses what it holds and what waits, and ignores later settlements', () => {
    const { ledger, gate, log, publish } = setup(1);
    const a = publish('a', {});
    publish('b', {});
    gate.releaseAll();
    assert.deepEqual(log, ['deliver a', 'refused a', 'refused b']);
    ledger.settle(a.ackId, 'stored');
    assert.equal(log.length, 3);
    assert.deepEqual([gate.stats().held, gate.stats().waiting, ledger.size], [0, 0, 0]);
  });
});
