/**
 * A clock whose time moves only when the test says so: `advance(ms)` runs every timer that falls due, in
 * order of due time, each with `now()` at its due time. For components that take a `Clock` (nodes/lib/clock.ts).
 */
import type { Clock } from '../../nodes/lib/clock';

interface FakeTimer {
  due: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock<FakeTimer> {
  private time: number;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): FakeTimer {
    const timer = { due: this.time + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(timer: FakeTimer): void {
    this.timers.delete(timer);
  }

  /** Timers set and not yet run or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, running the timers that fall due on the way (also those they set). */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.timers)
        if (t.due <= until && (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq)))
          next = t;
      if (!next) break;
      this.timers.delete(next);
      this.time = next.due;
      next.fn();
    }
    this.time = until;
  }
}
