import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckLedger, type AckOutcome, type AckOwner } from '../../nodes/lib/ingest/ack-ledger';

function recorder(): AckOwner & { seen: [number, AckOutcome][] } {
  const seen: [number, AckOutcome][] = [];
  return { seen, settled: (id, outcome) => void seen.push([id, outcome]) };
}

describe('ack ledger', () => {
  it('tells the owner once when an id is stored, and ignores later settlements', () => {
    const ledger = new AckLedger(() => 0, 0);
    const owner = recorder();
    const id = ledger.hold(owner, 1000);
    assert.equal(ledger.size, 1);
    ledger.settle(id, 'stored');
    ledger.settle(id, 'stored');
    ledger.settle(id, 'failed');
    assert.deepEqual(owner.seen, [[id, 'stored']]);
    assert.equal(ledger.size, 0);
  });

  it('waits for every reference of a publication that became several readings', () => {
    const ledger = new AckLedger(() => 0, 0);
    const owner = recorder();
    const id = ledger.hold(owner, 1000);
    ledger.addRefs(id, 2);
    ledger.settle([id, null, id], 'stored');
    assert.deepEqual(owner.seen, []);
    ledger.settle(id, 'stored');
    assert.deepEqual(owner.seen, [[id, 'stored']]);
  });

  it('reports a failure at once, whatever references remain', () => {
    const ledger = new AckLedger(() => 0, 0);
    const owner = recorder();
    const id = ledger.hold(owner, 1000);
    ledger.addRefs(id, 3);
    ledger.settle(id, 'failed');
    assert.deepEqual(owner.seen, [[id, 'failed']]);
  });

  it('times out ids nobody settled, and only those past their deadline', () => {
    let now = 0;
    const ledger = new AckLedger(() => now, 0);
    const owner = recorder();
    const early = ledger.hold(owner, 100);
    now = 50;
    const late = ledger.hold(owner, 100);
    now = 120;
    ledger.expire();
    assert.deepEqual(owner.seen, [[early, 'timeout']]);
    ledger.settle(late, 'stored');
    assert.deepEqual(owner.seen, [
      [early, 'timeout'],
      [late, 'stored'],
    ]);
  });

  it('answers wasStored only for ids that ended stored, among the last 2^20', () => {
    const ledger = new AckLedger(() => 0, 0);
    const owner = recorder();
    const [stored, failed, timedOut, parts] = Array.from({ length: 4 }, () => ledger.hold(owner, 1000));
    ledger.settle(stored, 'stored');
    ledger.settle(failed, 'failed');
    ledger.addRefs(parts, 1);
    ledger.settle(parts, 'stored');
    assert.equal(ledger.wasStored(parts), false, 'one part of two is not the reading');
    ledger.settle(parts, 'stored');
    ledger.expire(1000);
    const pending = ledger.hold(owner, 1000);
    assert.deepEqual(
      [stored, failed, timedOut, parts, pending, 0, 99].map((id) => ledger.wasStored(id)),
      [true, false, false, true, false, false, false],
    );
    const other = recorder();
    const gone = ledger.hold(other, 1000);
    ledger.forget(other);
    ledger.settle(gone, 'stored');
    assert.equal(ledger.wasStored(gone), false, 'a forgotten id is unknown');
    // Ids are remembered by their low bits: once 2^20 newer ids were held, an old one is unknown again.
    for (let i = 0; i < 1 << 20; i++) ledger.settle(ledger.hold(owner, 1000), 'failed');
    assert.equal(ledger.wasStored(stored), false);
  });

  it('forgets a closing owner without telling it, and keeps other owners', () => {
    const ledger = new AckLedger(() => 0, 0);
    const a = recorder();
    const b = recorder();
    const ia = ledger.hold(a, 1000);
    const ib = ledger.hold(b, 1000);
    ledger.forget(a);
    ledger.settle([ia, ib], 'stored');
    assert.deepEqual(a.seen, []);
    assert.deepEqual(b.seen, [[ib, 'stored']]);
  });
});
