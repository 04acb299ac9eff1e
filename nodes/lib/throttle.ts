/**
 * Calls `fn` at most once per `intervalMs` with the latest arguments; a call inside the interval is
 * delivered when it ends, so the last state is always shown. Keeps node status updates off the hot path.
 */
export class Throttle<A extends unknown[]> {
  private timer: NodeJS.Timeout | undefined;
  private lastRun = 0;
  private pending: A | undefined;

  constructor(
    private readonly fn: (...args: A) => void,
    private readonly intervalMs: number,
  ) {}

  call(...args: A): void {
    if (this.timer) {
      // The common case on a busy node: a delivery is already scheduled and will take these arguments.
      this.pending = args;
      return;
    }
    const wait = this.lastRun + this.intervalMs - Date.now();
    if (wait <= 0) {
      this.lastRun = Date.now();
      this.fn(...args);
      return;
    }
    this.pending = args;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const next = this.pending;
      this.pending = undefined;
      if (next) {
        this.lastRun = Date.now();
        this.fn(...next);
      }
    }, wait);
  }

  /** Drops a pending call; for node `close`. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }
}
