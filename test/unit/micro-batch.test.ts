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

  it('lets the wait grow while steady traffic closes batches on time, up to its bound, and shrink under light traffic', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const sizes: number[] = [];
      const b = new MicroBatcher({ maxCount: 100, maxWaitMs: 5, maxAdaptiveWaitMs: 20 }, (m) =>
        sizes.push(m.payload.length),
      );
      /** One batch at `perMs` publications per ms: pushes until the batch closes (on time or full). */
      const batchAt = (perMs: number): void => {
        const before = sizes.length;
        while (sizes.length === before) {
          for (let i = 0; i < perMs && sizes.length === before; i++) b.push(dev('a'), 'x', null);
          if (sizes.length === before) mock.timers.tick(1);
        }
      };
      // 5 per ms (5,000/s): 25 in 5 ms, then 50 in 10 ms, then full at 100 in 20 ms.
      for (let i = 0; i < 4; i++) batchAt(5);
      assert.deepEqual(sizes, [25, 50, 100, 100]);
      assert.equal(b.currentWaitMs, 20, 'bounded');
      // 1 per 2 ms: a batch of 10 closes on time (the tenth of the count): the wait stays; then fewer: back to 5.
      mock.timers.tick(100);
      sizes.length = 0;
      for (let i = 0; i < 10; i++) {
        b.push(dev('a'), 'x', null);
        mock.timers.tick(2);
      }
      mock.timers.tick(20);
      assert.deepEqual(sizes, [10]);
      assert.equal(b.currentWaitMs, 20);
      b.push(dev('a'), 'x', null);
      mock.timers.tick(20);
      assert.equal(b.currentWaitMs, 5, 'light traffic: the short wait again');
    } finally {
      mock.timers.reset();
    }
  });

  it('keeps a fixed wait without an adaptive bound', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const sizes: number[] = [];
      const b = new MicroBatcher({ maxCount: 100, maxWaitMs: 5 }, (m) => sizes.push(m.payload.length));
      for (let n = 0; n < 3; n++)
        for (let t = 0; t < 5; t++) {
          for (let i = 0; i < 5; i++) b.push(dev('a'), 'x', null);
          mock.timers.tick(1);
        }
      assert.deepEqual(sizes, [25, 25, 25]);
      assert.equal(b.currentWaitMs, 5);
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
