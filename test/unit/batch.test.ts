import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchElement, elementMessage } from '../../nodes/lib/batch';

describe('batch elements', () => {
  it('reads element i of a parallel array, or the plain value of a single reading', () => {
    assert.equal(batchElement([1, 2], 1), 2);
    assert.equal(batchElement(7, 1), 7);
  });

  it('makes a message of one element: the parallel properties element-wise, the rest copied by the clone', () => {
    const res = { answered: false };
    const cloned: unknown[] = [];
    const batch = {
      topic: 'batch',
      res,
      payload: [{ t: 1 }, { t: 2 }],
      device: [{ id: 'a' }, { id: 'b' }],
      ackId: [5, null],
      timestamp: [10, 20],
      messageId: ['m0', 'm1'],
      quality: [null, { t: { flag: 'bad' } }],
    };
    const out = elementMessage(batch, 1, (m) => {
      cloned.push(m);
      return { ...m };
    });
    assert.deepEqual(cloned, [{ topic: 'batch', res }], 'only the non-parallel properties are cloned');
    assert.deepEqual(out, {
      topic: 'batch',
      res,
      payload: { t: 2 },
      device: { id: 'b' },
      ackId: null,
      timestamp: 20,
      messageId: 'm1',
      quality: { t: { flag: 'bad' } },
    });
    const single = elementMessage({ device: { id: 'a' }, payload: [{ t: 1 }, { t: 2 }] }, 0, (m) => ({
      ...m,
    }));
    assert.deepEqual(single, { device: { id: 'a' }, payload: { t: 1 } }, 'one device for the whole array');
  });
});
