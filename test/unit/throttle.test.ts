import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { Throttle } from '../../nodes/lib/throttle';

describe('Throttle', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  it('runs the first call at once and delivers only the latest of the calls inside the interval', () => {
    const seen: number[] = [];
    const throttle = new Throttle((n: number) => seen.push(n), 500);
    throttle.call(1);
    assert.deepEqual(seen, [1]);
    throttle.call(2);
    throttle.call(3);
    mock.timers.tick(499);
    assert.deepEqual(seen, [1]);
    mock.timers.tick(1);
    assert.deepEqual(seen, [1, 3], 'the last state is shown when the interval ends');
    throttle.call(4);
    assert.deepEqual(seen, [1, 3], 'still inside the interval that began with the delivery of 3');
    mock.timers.tick(500);
    assert.deepEqual(seen, [1, 3, 4]);
    mock.timers.tick(500);
    throttle.call(5);
    assert.deepEqual(seen, [1, 3, 4, 5], 'a quiet interval later, a call runs at once again');
  });

  it('drops a pending call on cancel', () => {
    const seen: number[] = [];
    const throttle = new Throttle((n: number) => seen.push(n), 500);
    throttle.call(1);
    throttle.call(2);
    throttle.cancel();
    mock.timers.tick(1000);
    assert.deepEqual(seen, [1]);
  });
});
