/**
 * The checks on one value of one field (QARTOD-style gross range, spike via the Hampel identifier with a learned
 * noise floor, rate of change against the last accepted value, flat line, order), level-shift re-basing and the
 * estimates a flagged or missing value is replaced by. Everything a check learns lives in the field's record
 * (state.ts); what it found about the value being checked goes into one scratch object (`CheckScratch`) that the
 * flag builder (verdicts.ts) reads when the check fired.
 *
 * Hot path: fixed-size records in typed arrays, one preallocated sort buffer, one reused scratch object; nothing is
 * allocated per value.
 */
import * as robust from './robust';
import type { ImputeMethod, ReplaceMethod, ResolvedRule } from './rules';
import * as layout from './state';
import type { QualityStateStore } from './state';

// Local copies: a loader that compiles named imports to getters (tsx, esbuild) would otherwise put a
// function call behind every record offset on the hot path.
const { meanOf, medianOf, robustScale, weightedMeanWithoutOutliers } = robust;
const {
  F_FLAT_SINCE,
  F_LAST_TS,
  F_OUT,
  F_OUT_TS,
  F_INTERVAL,
  F_RING,
  F_TREND,
  F_VALUE,
  F_VALUE_TS,
  FIELD_INTS,
  I_FLAT_RUN,
  I_NOISE,
  I_RING,
  I_SHIFT,
  NOISE_SAMPLES_MASK,
  NOISE_SAMPLES_SHIFT,
  SHIFT_FIRST_REPLACED,
  SHIFT_RUN_MASK,
} = layout;

// Check bits.
export const RANGE_BAD = 1;
export const RANGE_SUSPECT = 2;
export const SPIKE = 4;
export const RATE = 8;
export const FLAT = 16;
export const ORDER = 32;
/** Checks that say a value disagrees with the level the field had: a run of them may be a new level. */
export const OUTLIER = SPIKE | RATE;

/**
 * E|x_t − x_t−1| = 2σ/√π for independent Gaussian noise of σ: turns the running mean absolute first
 * difference into a noise σ.
 */
const ABS_DIFF_TO_SIGMA = Math.sqrt(Math.PI) / 2;
/**
 * The noise estimate is the mean of the first NOISE_MEMORY errors of accepted values, then follows about that many.
 */
const NOISE_MEMORY = 64;
/** A first difference counts at most this many times the current estimate: one jump cannot inflate it. */
const NOISE_CLIP = 4;
/**
 * The noise floor is (k + FLOOR_EXTRA) learned σ̂, where σ̂ comes from the mean error of the level a value is
 * compared with (below): that error holds the reading's noise, the median's and what the signal itself did
 * since the window's readings, so a slowly wandering signal raises the floor only as much as it is unforeseeable.
 * The error of white noise around a 7-value median is ≈ 0.8 of a first difference; 2.5 puts clean readings
 * over the floor about once in 5,000 (measured with bench/quality-accuracy.ts).
 */
const FLOOR_EXTRA = 2.5;
/** The trend follows about the last 32 accepted changes. */
const TREND_MEMORY = 32;
/**
 * The level a value is compared with, replaced by and imputed from: the window carried along the trend, averaged
 * with weights that fall by this share per reading of age (1, 0.7, 0.49, … for 7 values), without the (at most
 * two) values beyond the noise floor from it. The median of 7 is about 3 readings old: a signal that wanders (a
 * random walk, not a trend) has moved on since, and the weights follow it sooner. Measured with
 * bench/quality-accuracy.ts: 0.25 and 0.4 do worse (spike recall, precision), 0.3–0.35 best. Dropping only values
 * beyond the floor, rather than always the lowest and the highest, brought the level from 0.85 σ to 0.80 σ rms off
 * the truth at σ 0.05 with 60 s readings (a Kalman filter that knew the signal's model would reach ≈ 0.76 σ).
 */
const LEVEL_DECAY = 0.3;

/** What noise alone can do to one value (see FLOOR_EXTRA), but never less than the sensor's resolution. */
function noiseFloor(r: ResolvedRule, noise: number): number {
  return Math.max((r.spikeK + FLOOR_EXTRA) * noise, r.spikeMinDeviation);
}

/**
 * What the last `check` found about its value, read by the flag builder only when a check fired. One object per
 * engine, reused for every value: the only channel between checking a value and describing what was found.
 */
export interface CheckScratch {
  /** The level this value was compared with (see LEVEL_DECAY) and its limit (NaN when the spike test did not run). */
  level: number;
  threshold: number;
  windowSize: number;
  /** The accepted value and its time the rate was measured against, and the allowed change. */
  ref: number;
  refTs: number;
  allowance: number;
  /** Order: the field's newest time. Flat line: when the run of identical values began, and its length. */
  prevTs: number;
  flatRun: number;
  /** Readings of the current run of outliers that agree on a new level (0 = not a run, 1 = its first). */
  shiftRun: number;
  /** This reading confirmed a new level (window re-based). */
  shifted: boolean;
  /** A flat line ended with this reading (window re-based on it). */
  flatEnded: boolean;
  /** The run's first reading to send again with its raw value, when it was replaced. */
  restoreTs: number;
  restoreValue: number;
}

export class FieldChecks {
  readonly scratch: CheckScratch = {
    level: NaN,
    threshold: NaN,
    windowSize: 0,
    ref: NaN,
    refTs: NaN,
    allowance: NaN,
    prevTs: NaN,
    flatRun: 0,
    shiftRun: 0,
    shifted: false,
    flatEnded: false,
    restoreTs: NaN,
    restoreValue: NaN,
  };
  private readonly sortBuffer: Float64Array;
  /** Weight of each window value in the level, newest first (LEVEL_DECAY). */
  private readonly levelWeights: Float64Array;
  /** The window's values carried along the trend to the time of the value being checked. */
  private readonly carried: Float64Array;

  constructor(
    readonly store: QualityStateStore,
    readonly window: number,
  ) {
    this.sortBuffer = new Float64Array(window + 1); // + 1: a level-shift run may be one longer
    this.carried = new Float64Array(window);
    this.levelWeights = new Float64Array(window);
    for (let j = 0, w = 1; j < window; j++, w *= 1 - LEVEL_DECAY) this.levelWeights[j] = w;
  }

  /**
   * Runs the checks on value `v` and updates the record unless the reading is out of order. Returns the check
   * bits; the numbers behind them are in `scratch`.
   */
  check(slot: number, r: ResolvedRule, ts: number, v: number): number {
    const store = this.store;
    const f = store.fieldF64;
    const n = store.fieldI32;
    const f32 = store.fieldF32;
    const W = this.window;
    const b = slot * store.fieldStride;
    const ib = slot * FIELD_INTS;
    const found = this.scratch;
    const lastTs = f[b + F_LAST_TS];
    if (ts <= lastTs) {
      found.prevTs = lastTs;
      return ORDER; // passed through flagged; the record stays as it was
    }
    f[b + F_LAST_TS] = ts;
    const ringWord = n[ib + I_RING];
    let head = ringWord & 0xff;
    let count = ringWord >>> 8;
    if (count > 0 && ts - lastTs > r.maxGapMs) {
      // After a long silence the window describes another time: start again rather than judge against it.
      // The noise estimate is the sensor's and stays.
      head = count = 0;
      n[ib + I_RING] = 0;
      n[ib + I_FLAT_RUN] = 0;
      n[ib + I_SHIFT] &= NOISE_SAMPLES_MASK;
      f[b + F_TREND] = 0;
    }
    found.level = NaN;
    found.shiftRun = 0;
    found.shifted = false;
    found.flatEnded = false;
    found.restoreTs = NaN;
    if (v < r.min || v > r.max) {
      n[ib + I_SHIFT] &= NOISE_SAMPLES_MASK; // a run of outliers is a run of readings in the window
      return RANGE_BAD; // a value outside the sensor's range never enters the window
    }

    let mask = v < r.suspectMin || v > r.suspectMax ? RANGE_SUSPECT : 0;
    const ring = b + F_RING;
    const last = f[b + F_VALUE];
    const dt = ts - f[b + F_VALUE_TS];
    let interval = f[b + F_INTERVAL];
    if (count > 0) {
      // The typical time between readings, so that a reading after a gap is not read as one step of the trend.
      interval = f[b + F_INTERVAL] =
        interval === 0 ? dt : interval + (Math.min(dt, 3 * interval) - interval) / 16;
    }
    const noise = f32[ib + I_NOISE] * ABS_DIFF_TO_SIGMA;
    const floor = noiseFloor(r, noise);

    if (r.flatCount > 0 || r.flatMs > 0) {
      let run = 1;
      if (count > 0 && Math.abs(v - last) <= r.flatTolerance) run = n[ib + I_FLAT_RUN] + 1;
      else {
        const prevRun = n[ib + I_FLAT_RUN];
        if (
          count > 0 &&
          ((r.flatCount > 0 && prevRun >= r.flatCount) ||
            (r.flatMs > 0 && prevRun > 1 && lastTs - f[b + F_FLAT_SINCE] >= r.flatMs))
        ) {
          // A stuck period ended: the window holds the frozen value. Judge from this value on instead.
          f.fill(v, ring, ring + W);
          head = 0;
          count = W;
          found.flatEnded = true;
        }
        f[b + F_FLAT_SINCE] = ts;
      }
      n[ib + I_FLAT_RUN] = run;
      if (
        (r.flatCount > 0 && run >= r.flatCount) ||
        (r.flatMs > 0 && run > 1 && ts - f[b + F_FLAT_SINCE] >= r.flatMs)
      ) {
        mask |= FLAT;
        found.flatRun = run;
        found.prevTs = f[b + F_FLAT_SINCE];
      }
    }

    if (r.spike && count === W) {
      // Each window value carried along the trend to now (the newest is dt old, each older one an interval
      // more): the median and its scale then measure noise, not what a rising or falling signal did.
      const carried = this.carried;
      const slope = f[b + F_TREND];
      for (let j = 0; j < W; j++) {
        const i = head - 1 - j;
        carried[j] = f[ring + (i < 0 ? i + W : i)] + slope * (j * interval + dt);
      }
      // While a run of outliers (a possible new level) is the newest in the window, the weights would let it pull
      // the level towards itself, and the run would no longer look like one: the median ignores it.
      const inRun = (n[ib + I_SHIFT] & SHIFT_RUN_MASK) !== 0;
      let level = inRun ? NaN : weightedMeanWithoutOutliers(carried, W, this.levelWeights, floor);
      // The limit is never below the floor: a value within it is no spike, and the window's median and scale (two
      // sorts, most of the check's time) are needed only for a value beyond it.
      if (inRun || !(Math.abs(v - level) <= floor)) {
        const median = medianOf(carried, 0, W, this.sortBuffer);
        const thr = Math.max(r.spikeK * robustScale(carried, 0, W, median, this.sortBuffer), floor);
        if (inRun) level = median;
        if (Math.abs(v - level) > thr) {
          mask |= SPIKE;
          found.threshold = thr;
          found.windowSize = W;
        }
      }
      found.level = level;
    }
    // Rate of change against what was accepted, never against a value that was itself doubted.
    const refTs = f[b + F_OUT_TS];
    if (r.maxRate > 0 && count > 0 && refTs !== -Infinity) {
      const ref = f[b + F_OUT];
      const allowance = (r.maxRate * (ts - refTs)) / 1000 + Math.SQRT2 * floor;
      if (Math.abs(v - ref) > allowance) {
        mask |= RATE;
        found.ref = ref;
        found.refTs = refTs;
        found.allowance = allowance;
      }
    }

    let run = n[ib + I_SHIFT] & SHIFT_RUN_MASK;
    let shifted = false;
    if (mask & OUTLIER) {
      if (r.shiftCount > 0) {
        run = this.shiftRun(b, ib, r, ts, v, run, head, count, floor, lastTs);
        shifted = run === 0;
        if (shifted) {
          head = 0;
          count = W;
        }
      }
    } else {
      if (count > 0 && run === 0 && dt <= 2 * interval && !found.flatEnded) {
        // Learn the trend (first differences) and the noise (below) from values that agree with the level: running
        // means (exact over the first NOISE_MEMORY, then over about that many), each |Δ| clipped at NOISE_CLIP
        // times the estimate. Exact repeats say nothing about noise.
        const word = n[ib + I_SHIFT];
        const samples = word >>> NOISE_SAMPLES_SHIFT;
        const diff = v - last;
        f[b + F_TREND] += (diff / dt - f[b + F_TREND]) / Math.min(samples + 1, TREND_MEMORY);
        // Noise: the error of the level carried along the trend, once the window is full (before: |Δ|).
        const delta = Number.isNaN(found.level) ? Math.abs(diff) : Math.abs(v - found.level);
        if (Math.abs(diff) > r.flatTolerance && delta > 0) {
          const s = f32[ib + I_NOISE];
          f32[ib + I_NOISE] = s === 0 ? delta : s + (Math.min(delta, NOISE_CLIP * s) - s) / (samples + 1);
          if (samples + 1 < NOISE_MEMORY) n[ib + I_SHIFT] = word + (1 << NOISE_SAMPLES_SHIFT);
        }
      }
      run = 0;
    }
    const word = n[ib + I_SHIFT];
    n[ib + I_SHIFT] = run === 0 ? word & NOISE_SAMPLES_MASK : (word & ~SHIFT_RUN_MASK) | run;

    // Outliers enter the window too: the median ignores isolated ones, and a run of them is a new level (whose
    // values are the window already).
    if (!shifted) {
      f[ring + head] = v;
      head = head + 1 === W ? 0 : head + 1;
      if (count < W) count++;
    }
    n[ib + I_RING] = head | (count << 8);
    f[b + F_VALUE] = v;
    f[b + F_VALUE_TS] = ts;
    if (mask === 0) {
      f[b + F_OUT_TS] = ts;
      f[b + F_OUT] = v;
    }
    return mask;
  }

  /**
   * One more outlier in a row (`run` before it). Returns the new run length, or 0 when the run's values agree
   * with each other and it reached `shiftCount`: a new level, the window re-based on them (`scratch.shifted`).
   */
  private shiftRun(
    b: number,
    ib: number,
    r: ResolvedRule,
    ts: number,
    v: number,
    run: number,
    head: number,
    count: number,
    floor: number,
    lastTs: number,
  ): number {
    const f = this.store.fieldF64;
    const found = this.scratch;
    const W = this.window;
    const ring = b + F_RING;
    if (run > count || run >= SHIFT_RUN_MASK) run = 0; // the run's earlier values are no longer all in the window
    if (run > 0) {
      // The run's earlier values are the newest `run` ring entries.
      let lo = v;
      let hi = v;
      let sum = v;
      for (let i = 1; i <= run; i++) {
        const x = f[ring + ((head - i + W) % W)];
        if (x < lo) lo = x;
        if (x > hi) hi = x;
        sum += x;
      }
      const level = sum / (run + 1);
      // Agreement: as close as noise allows; before any noise is learned, close compared with the jump.
      const band = floor > 0 ? Math.SQRT2 * floor : Math.abs(level - f[b + F_OUT]) / 4;
      if (hi - lo > band) run = 0;
    }
    run++;
    const n = this.store.fieldI32;
    if (run === 1) {
      n[ib + I_SHIFT] &= NOISE_SAMPLES_MASK;
      return 1;
    }
    found.shiftRun = run;
    if (run === 2 && (n[ib + I_SHIFT] & SHIFT_FIRST_REPLACED) !== 0) {
      // Two outliers in a row that agree are kept as a possible new level: the first, replaced when it came
      // (a run breaks on any reading that did not enter the window), is sent again with its raw value.
      found.restoreTs = lastTs;
      found.restoreValue = f[ring + ((head - 1 + W) % W)];
      n[ib + I_SHIFT] &= ~SHIFT_FIRST_REPLACED;
    }
    if (run < r.shiftCount) return run;
    // A new level: the window holds the run's values only, and the newest becomes the accepted value.
    const vals = this.sortBuffer;
    for (let i = 1; i < run; i++) vals[run - 1 - i] = f[ring + ((head - i + W) % W)];
    vals[run - 1] = v;
    for (let i = 0; i < W; i++) f[ring + i] = vals[i % run];
    // The trend stays: a step does not change how the signal was moving (a daily cycle goes on), and without it
    // the re-based window lags the first readings after the step.
    f[b + F_OUT_TS] = ts;
    f[b + F_OUT] = v;
    n[ib + I_SHIFT] &= NOISE_SAMPLES_MASK;
    found.shifted = true;
    return 0;
  }

  /**
   * An estimate of the field at `ts` from its record, or NaN when there is none within the rule's maximum gap.
   * `mean` averages the window; `median` is the level of the window carried along the trend to `ts` (see
   * LEVEL_DECAY; `level`, when the spike test already computed it). `locf` is the last accepted value,
   * `linear` extrapolates the last two accepted values (clamped to the gross range): a streaming node cannot
   * wait for the next value to interpolate.
   */
  estimate(
    slot: number,
    r: ResolvedRule,
    ts: number,
    method: ReplaceMethod | ImputeMethod,
    level: number,
  ): number {
    const f = this.store.fieldF64;
    const b = slot * this.store.fieldStride;
    const count = this.store.fieldI32[slot * FIELD_INTS + I_RING] >>> 8;
    switch (method) {
      case 'median':
      case 'mean': {
        if (count === 0 || ts - f[b + F_LAST_TS] > r.maxGapMs) return NaN;
        if (method === 'mean') return meanOf(f, b + F_RING, count);
        if (!Number.isNaN(level)) return level;
        // The window's values carried along the trend to `ts`, newest first, as the spike test takes them.
        const ring = b + F_RING;
        const head = this.store.fieldI32[slot * FIELD_INTS + I_RING] & 0xff;
        const W = this.window;
        const slope = f[b + F_TREND];
        const interval = f[b + F_INTERVAL];
        const dt = ts - f[b + F_VALUE_TS];
        const carried = this.carried;
        for (let j = 0; j < count; j++) {
          const i = head - 1 - j;
          carried[j] = f[ring + (i < 0 ? i + W : i)] + slope * (j * interval + dt);
        }
        const noise = this.store.fieldF32[slot * FIELD_INTS + I_NOISE] * ABS_DIFF_TO_SIGMA;
        return weightedMeanWithoutOutliers(carried, count, this.levelWeights, noiseFloor(r, noise));
      }
      case 'locf':
      case 'linear': {
        const outTs = f[b + F_OUT_TS];
        const age = ts - outTs;
        if (outTs === -Infinity || age < 0 || age > r.maxGapMs) return NaN;
        if (method === 'locf') return f[b + F_OUT];
        return Math.min(r.max, Math.max(r.min, f[b + F_OUT] + f[b + F_TREND] * age));
      }
      case 'none':
        return NaN;
    }
  }

  /**
   * The value just checked was replaced: if it was the first outlier of a run that becomes a new level, it is sent
   * again with its raw value.
   */
  markReplaced(slot: number): void {
    this.store.fieldI32[slot * FIELD_INTS + I_SHIFT] |= SHIFT_FIRST_REPLACED;
  }
}
