import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { isMicroBatch, MicroBatcher, type MicroBatch } from '../../nodes/lib/ingest/micro-batch';

const dev = (id: string) => ({ id, type: 'sensor' });

describe('micro-batcher', () => {
  it('sends a batch when it reaches its count, with parallel arrays in arrival order', () => {
    const sent: MicroBatch[] = [];
    const b = new MicroBatcher({ maxCount: 2, maxWaitMs: 1000 }, (m) => sent.push(m));
    b.push(dev('a'), 'x', 1);
    assert.equal(sent.length, 0);
    b.push(dev('b'), 'y', null);
    assert.deepEqual(sent, [
      { topic: 'batch', payload: ['x', 'y'], device: [dev('a'), dev('b')], ackId: [1, null] },
    ]);
    assert.equal(b.pending, 0);
    assert.ok(isMicroBatch(sent[0]));
    assert.ok(!isMicroBatch({ device: dev('a') }));
  });

  it('sends a partial batch when the first publication has waited maxWaitMs', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const sent: MicroBatch[] = [];
      const b = new MicroBatcher({ maxCount: 100, maxWaitMs: 50 }, (m) => sent.push(m));
      b.push(dev('a'), 'x', 7);
      mock.timers.tick(49);
      assert.equal(sent.length, 0);
      mock.timers.tick(1);
      assert.deepEqual(sent[0]?.ackId, [7]);
    } finally {
      mock.timers.reset();
    }
  });

  it('discards what it holds without sending it', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const sent: MicroBatch[] = [];
      const b = new MicroBatcher({ maxCount: 100, maxWaitMs: 50 }, (m) => sent.push(m));
      b.push(dev('a'), 'x', 7);
      b.discard();
      mock.timers.tick(100);
      assert.equal(sent.length, 0);
      assert.equal(b.pending, 0);
    } finally {
      mock.timers.reset();
    }
  });
});
