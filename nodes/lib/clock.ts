/**
 * Time as a component sees it: the wall clock and one-shot timers. Components that decide by time take one, so
 * that a test drives time step by step instead of waiting for it.
 */
export interface Clock<Timer = unknown> {
  /** Milliseconds since 1970, as `Date.now()`. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

/** The process's own clock and timers. */
export const systemClock: Clock<NodeJS.Timeout> = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => {
    clearTimeout(timer);
  },
};
