/**
 * The data quality engine: QARTOD-style checks per device and field (gross range, spike via the Hampel
 * identifier with a learned noise floor, rate of change against the last accepted value, flat line, order),
 * level-shift re-basing, actions (flag, replace, reject), imputation of missing values, gap detection and
 * optional gap filling. The per-device scorecard is in scorecard.ts.
 *
 * Hot path: a reading's fields are checked against fixed-size records in typed arrays (state.ts) with one
 * preallocated sort buffer and one reused details object; nothing is allocated per field unless the field is
 * flagged. Event time (`ts`) drives every decision, so the same input sequence always gives the same output.
 */
import { type CheckName, type FieldQuality } from './flags';
import * as robust from './robust';
import {
  type FieldRuleInput,
  type ReplaceMethod,
  type ImputeMethod,
  type ResolvedRule,
  type Action,
  resolveRule,
} from './rules';
import { round2, scorecards, type DeviceScorecard } from './scorecard';
import * as layout from './state';
import { MemoryStateStore, type QualityStateStore } from './state';

export type { DeviceScorecard } from './scorecard';

// Local copies: a loader that compiles named imports to getters (tsx, esbuild) would otherwise put a
// function call behind every record offset on the hot path.
const { meanOf, medianOf, robustScale, trimmedWeightedMean } = robust;
const {
  C_FIELD_VALUES,
  C_FILLED,
  D_FIRST_TS,
  C_FLAT,
  C_GAP_SLOTS,
  C_IMPUTED,
  D_LAST_SEEN,
  D_LAST_TS,
  C_MISSING,
  C_ORDER,
  C_RANGE,
  C_RATE,
  C_READINGS,
  C_REJECTED,
  C_SPIKE,
  DEVICE_DOUBLES,
  DEVICE_COUNTERS,
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
const RANGE_BAD = 1;
const RANGE_SUSPECT = 2;
const SPIKE = 4;
const RATE = 8;
const FLAT = 16;
const ORDER = 32;
/** Checks that say a value disagrees with the level the field had: a run of them may be a new level. */
const OUTLIER = SPIKE | RATE;

/**
 * E|x_t − x_t−1| = 2σ/√π for independent Gaussian noise of σ: turns the running mean absolute first
 * difference into a noise σ.
 */
const ABS_DIFF_TO_SIGMA = Math.sqrt(Math.PI) / 2;
/** The noise estimate is the mean of the first NOISE_MEMORY accepted first differences, then follows about that many. */
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
 * The level a value is compared with, replaced by and imputed from: the window carried along the trend, its lowest
 * and highest value dropped, the rest averaged with weights that fall by this share per reading of age (1, 0.7,
 * 0.49, … for 7 values). The median of 7 is about 3 readings old: a signal that wanders (a random walk, not a
 * trend) has moved on since, and the weights follow it sooner. Measured with bench/quality-accuracy.ts: 0.25 and
 * 0.4 do worse (spike recall, precision), 0.3–0.35 best.
 */
const LEVEL_DECAY = 0.3;

export interface QualityOptions {
  /** Hampel window (values before the current one), 3..63; default 7. One size per node: records are fixed. */
  window?: number;
  /** Distinct field names tracked per node (bounded memory); default 16. */
  maxFields?: number;
  rules?: FieldRuleInput[];
  /** Check numeric fields that have no rule with the default rule (and the schema's range); default true. */
  checkOtherFields?: boolean;
  /** Expected reading interval per device (ms); 0 = unknown (no gap detection, no completeness). */
  expectedIntervalMs?: number;
  /** Emit the missing slots of a gap as imputed readings; default false. */
  fillGaps?: boolean;
  /** At most this many slots are filled; a longer gap is only counted. Default 10. */
  maxFill?: number;
  /** JSON Schema of a device type, for gross ranges (the registry's `getType(name).schema`). */
  schemaFor?: (type: string) => unknown;
  /** Where the per device and field records live; default: a new in-process MemoryStateStore. */
  store?: QualityStateStore;
  /** Field names the store's records were saved with (restored state). */
  fieldNames?: readonly string[];
}

/** An extra reading the engine emits for a device: an imputed gap slot, or a restored raw value. */
export interface FilledReading {
  timestamp: number;
  payload: Record<string, number>;
  quality: Record<string, FieldQuality>;
}

/**
 * What happened to one reading. The object is reused by the engine: read it before the next `process` call.
 * The values it points to (`quality`, `rejected`, `fills`, `restored`) are new for each reading and may be kept.
 */
export interface ReadingOutcome {
  /** Flags of the fields that are not plainly good; undefined when every field passed. */
  quality: Record<string, FieldQuality> | undefined;
  /** Set when a check whose action is `reject` fired: the reading goes to the rejected output. */
  rejected: { field: string; check: CheckName; reason: string } | undefined;
  /** Missing slots since the device's previous reading (0 when none or no expected interval). */
  gapSlots: number;
  /** Imputed readings for those slots, oldest first, when gap filling is on and the gap is short enough. */
  fills: FilledReading[] | undefined;
  /**
   * Earlier readings whose replaced value turned out to be the first of a new level: sent again at their own
   * time with the raw value (flagged suspect), so that a store keyed by time keeps the raw value.
   */
  restored: FilledReading[] | undefined;
}

/** A device type whose readings carry numeric fields beyond the node's field table. */
export interface UntrackedNotice {
  type: string;
  fields: string[];
}

/** What the last `check` found, read by `flagged` only when it flagged something. One object, reused. */
interface CheckDetails {
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

const ACTION_RANK: Record<Action, number> = { flag: 0, replace: 1, reject: 2 };

export class QualityEngine {
  readonly store: QualityStateStore;
  readonly window: number;
  private readonly fieldIndex = new Map<string, number>();
  private readonly fieldNames: string[] = [];
  private readonly explicit = new Map<string, FieldRuleInput>();
  private readonly explicitNames: string[] = [];
  private readonly checkOtherFields: boolean;
  private readonly expectedIntervalMs: number;
  private readonly fillGaps: boolean;
  private readonly maxFill: number;
  private readonly schemaFor: ((type: string) => unknown) | undefined;
  /** Per device type: resolved rule per field index (null = field not checked, undefined = not resolved yet). */
  private readonly rulesByType = new Map<string, (ResolvedRule | null | undefined)[]>();
  private readonly sortBuffer: Float64Array;
  /** Weight of each window value in the level, newest first (LEVEL_DECAY). */
  private readonly levelWeights: Float64Array;
  /** The window's values carried along the trend to the time of the value being checked. */
  private readonly carried: Float64Array;
  /** Field names beyond maxFields, passed through unchecked (the first 100). */
  readonly untracked = new Set<string>();
  /** Device types already reported with untracked fields (at most 100), and the report not yet taken. */
  private readonly untrackedTypes = new Set<string>();
  private untrackedNotice: UntrackedNotice | undefined;
  private readonly outcome: ReadingOutcome = {
    quality: undefined,
    rejected: undefined,
    gapSlots: 0,
    fills: undefined,
    restored: undefined,
  };
  private readonly details: CheckDetails = {
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
  /** The device's previous reading time when this reading ended a gap: where filled slots start. */
  private gapFrom = NaN;

  constructor(opts: QualityOptions = {}) {
    this.window = opts.window ?? 7;
    const maxFields = opts.maxFields ?? 16;
    this.store = opts.store ?? new MemoryStateStore(this.window, maxFields);
    if (this.store.window !== this.window)
      throw new RangeError('store window differs from the engine window');
    for (const r of opts.rules ?? []) {
      if (typeof r.field !== 'string' || r.field === '') throw new Error('every rule needs a field name');
      if (this.explicit.has(r.field)) throw new Error(`field "${r.field}" has two rules`);
      // Reports configuration errors now, not on the first message.
      const resolved = resolveRule(r.field, r);
      if (resolved.shiftCount > this.window + 1)
        throw new Error(
          `field "${r.field}": shiftCount ${resolved.shiftCount} needs a window of at least ${resolved.shiftCount - 1}`,
        );
      this.explicit.set(r.field, r);
      this.explicitNames.push(r.field);
    }
    this.checkOtherFields = opts.checkOtherFields ?? true;
    this.expectedIntervalMs = opts.expectedIntervalMs ?? 0;
    this.fillGaps = opts.fillGaps ?? false;
    this.maxFill = opts.maxFill ?? 10;
    this.schemaFor = opts.schemaFor;
    this.sortBuffer = new Float64Array(this.window + 1); // + 1: a level-shift run may be one longer
    this.carried = new Float64Array(this.window);
    this.levelWeights = new Float64Array(this.window);
    for (let j = 0, w = 1; j < this.window; j++, w *= 1 - LEVEL_DECAY) this.levelWeights[j] = w;
    for (const name of opts.fieldNames ?? []) this.indexOf(name);
  }

  /** Forget resolved rules (device types changed in the registry). */
  invalidateRules(): void {
    this.rulesByType.clear();
  }

  /** Field names in record order, for `store.serialize`. */
  get fields(): readonly string[] {
    return this.fieldNames;
  }

  /**
   * The first time a device type sends numeric fields beyond the field table: the type and the untracked
   * names seen so far. Returned once per type (at most 100 types), then undefined: a report, not a flood.
   */
  takeUntrackedNotice(): UntrackedNotice | undefined {
    const notice = this.untrackedNotice;
    this.untrackedNotice = undefined;
    return notice;
  }

  private indexOf(name: string): number {
    const found = this.fieldIndex.get(name);
    if (found !== undefined) return found;
    if (this.fieldNames.length >= this.store.maxFields) {
      if (this.untracked.size < 100) this.untracked.add(name); // a report, not another unbounded table
      return -1;
    }
    this.fieldIndex.set(name, this.fieldNames.length);
    this.fieldNames.push(name);
    return this.fieldNames.length - 1;
  }

  private noteUntracked(type: string): void {
    if (this.untrackedTypes.has(type) || this.untrackedTypes.size >= 100) return;
    this.untrackedTypes.add(type);
    this.untrackedNotice ??= { type, fields: [...this.untracked] };
  }

  private rulesOf(type: string): (ResolvedRule | null | undefined)[] {
    let table = this.rulesByType.get(type);
    if (!table) this.rulesByType.set(type, (table = []));
    return table;
  }

  private ruleFor(type: string, fi: number, table = this.rulesOf(type)): ResolvedRule | null {
    const known = table[fi];
    if (known !== undefined) return known;
    const name = this.fieldNames[fi];
    const input = this.explicit.get(name);
    let rule =
      input || this.checkOtherFields
        ? resolveRule(name, input, type ? this.schemaFor?.(type) : undefined)
        : null;
    // A small window cannot hold a long run: the longest it can, rather than an error per reading.
    if (rule && rule.shiftCount > this.window + 1) rule = { ...rule, shiftCount: this.window + 1 };
    table[fi] = rule;
    return rule;
  }

  /**
   * Checks one reading of `deviceId` at event time `ts` (ms). Replaced and imputed values are written into
   * `payload`; flags say what was done and keep the raw value. `upstream` is an incoming `msg.quality`: a field
   * flagged there and absent from the payload (refused upstream) counts as missing. `now` (wall clock) only
   * drives TTL eviction.
   */
  process(
    deviceId: string,
    type: string,
    ts: number,
    payload: Record<string, unknown>,
    upstream?: Record<string, unknown>,
    now = Date.now(),
  ): ReadingOutcome {
    const out = this.outcome;
    out.quality = undefined;
    out.rejected = undefined;
    out.gapSlots = 0;
    out.fills = undefined;
    out.restored = undefined;
    const store = this.store;
    const dev = store.device(deviceId, true);
    const db = dev * DEVICE_DOUBLES;
    const d = store.deviceF64;
    d[db + D_LAST_SEEN] = now;
    const c = store.deviceU32;
    const cb = dev * DEVICE_COUNTERS;
    c[cb + C_READINGS]++;
    if (Number.isNaN(d[db + D_FIRST_TS])) d[db + D_FIRST_TS] = ts;
    const devLastTs = d[db + D_LAST_TS];
    let gapSlots = 0;
    if (ts > devLastTs) {
      if (this.expectedIntervalMs > 0 && devLastTs !== -Infinity) {
        gapSlots = Math.max(0, Math.round((ts - devLastTs) / this.expectedIntervalMs) - 1);
        c[cb + C_GAP_SLOTS] += gapSlots;
        this.gapFrom = devLastTs;
      }
      d[db + D_LAST_TS] = ts;
    }
    out.gapSlots = gapSlots;
    const filling = this.fillGaps && gapSlots > 0 && gapSlots <= this.maxFill;
    const rules = this.rulesOf(type);

    for (const name in payload) {
      const v = payload[name];
      if ((typeof v !== 'number' && v !== null) || name === 'ts') continue; // only measured values; `ts` is time
      const fi = this.indexOf(name);
      if (fi < 0) {
        this.noteUntracked(type);
        continue;
      }
      const known = rules[fi];
      const rule = known === undefined ? this.ruleFor(type, fi, rules) : known;
      if (rule === null) continue;
      const slot = store.field(dev, fi, true);
      if (v === null || !Number.isFinite(v)) {
        this.missing(slot, rule, ts, payload, cb);
        continue;
      }
      // The last good value before this one, read before check() moves it on: where a gap fill starts.
      const fromTs = filling ? store.fieldF64[slot * store.fieldStride + F_OUT_TS] : -Infinity;
      const from = filling ? store.fieldF64[slot * store.fieldStride + F_OUT] : 0;
      c[cb + C_FIELD_VALUES]++;
      const mask = this.check(slot, rule, ts, v);
      if (mask === 0) {
        if (filling) this.fill(rule, ts, v, fromTs, from, deviceId);
        continue;
      }
      const action = this.flagged(slot, rule, ts, v, mask, payload, cb);
      if (action === 'reject' && !out.rejected) {
        const q = out.quality![name];
        out.rejected = { field: name, check: q.check, reason: q.reason };
      }
    }

    const expected = this.explicitNames;
    for (let i = 0; i < expected.length; i++) {
      if (payload[expected[i]] === undefined) this.absent(expected[i], type, dev, cb, ts, payload);
    }
    if (upstream) {
      for (const name in upstream) {
        if (payload[name] === undefined && !this.explicit.has(name))
          this.absent(name, type, dev, cb, ts, payload);
      }
    }
    if (out.rejected) c[cb + C_REJECTED]++;
    const fills = out.fills as FilledReading[] | undefined; // set by fill(), which TypeScript cannot see
    if (fills) {
      fills.sort((a, b) => a.timestamp - b.timestamp);
      c[cb + C_FILLED] += fills.length;
    }
    return out;
  }

  private absent(
    name: string,
    type: string,
    dev: number,
    cb: number,
    ts: number,
    payload: Record<string, unknown>,
  ): void {
    // Only a field this device has sent before can be missing: devices of other kinds share the rules.
    const fi = this.fieldIndex.get(name);
    const slot = fi === undefined ? -1 : this.store.field(dev, fi, false);
    if (slot < 0) return;
    const rule = this.ruleFor(type, fi!);
    if (rule !== null) this.missing(slot, rule, ts, payload, cb);
  }

  /**
   * Runs the checks on value `v` and updates the record unless the reading is out of order. Returns the check
   * bits; the numbers behind them are in `this.details`.
   */
  private check(slot: number, r: ResolvedRule, ts: number, v: number): number {
    const store = this.store;
    const f = store.fieldF64;
    const n = store.fieldI32;
    const f32 = store.fieldF32;
    const W = this.window;
    const b = slot * store.fieldStride;
    const ib = slot * FIELD_INTS;
    const det = this.details;
    const lastTs = f[b + F_LAST_TS];
    if (ts <= lastTs) {
      det.prevTs = lastTs;
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
    det.level = NaN;
    det.shiftRun = 0;
    det.shifted = false;
    det.flatEnded = false;
    det.restoreTs = NaN;
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
    // What noise alone can do to one value (see FLOOR_EXTRA), but never less than the sensor's resolution.
    const noise = f32[ib + I_NOISE] * ABS_DIFF_TO_SIGMA;
    const floor = Math.max((r.spikeK + FLOOR_EXTRA) * noise, r.spikeMinDeviation);

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
          det.flatEnded = true;
        }
        f[b + F_FLAT_SINCE] = ts;
      }
      n[ib + I_FLAT_RUN] = run;
      if (
        (r.flatCount > 0 && run >= r.flatCount) ||
        (r.flatMs > 0 && run > 1 && ts - f[b + F_FLAT_SINCE] >= r.flatMs)
      ) {
        mask |= FLAT;
        det.flatRun = run;
        det.prevTs = f[b + F_FLAT_SINCE];
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
      const median = medianOf(carried, 0, W, this.sortBuffer);
      const thr = Math.max(r.spikeK * robustScale(carried, 0, W, median, this.sortBuffer), floor);
      // While a run of outliers (a possible new level) is the newest in the window, the weights would let it pull
      // the level towards itself, and the run would no longer look like one: the median ignores it.
      const level =
        (n[ib + I_SHIFT] & SHIFT_RUN_MASK) === 0
          ? trimmedWeightedMean(carried, W, this.levelWeights)
          : median;
      det.level = level;
      if (Math.abs(v - level) > thr) {
        mask |= SPIKE;
        det.threshold = thr;
        det.windowSize = W;
      }
    }
    // Rate of change against what was accepted, never against a value that was itself doubted.
    const refTs = f[b + F_OUT_TS];
    if (r.maxRate > 0 && count > 0 && refTs !== -Infinity) {
      const ref = f[b + F_OUT];
      const allowance = (r.maxRate * (ts - refTs)) / 1000 + Math.SQRT2 * floor;
      if (Math.abs(v - ref) > allowance) {
        mask |= RATE;
        det.ref = ref;
        det.refTs = refTs;
        det.allowance = allowance;
      }
    }

    let run = n[ib + I_SHIFT] & SHIFT_RUN_MASK;
    let written = false;
    if (mask & OUTLIER) {
      if (r.shiftCount > 0) {
        run = this.shiftRun(b, ib, r, ts, v, run, head, count, floor, lastTs);
        if (det.shifted) {
          written = true;
          head = 0;
          count = W;
        }
      }
    } else {
      if (count > 0 && run === 0 && dt <= 2 * interval && !det.flatEnded) {
        // Learn the trend (first differences) and the noise (below) from values that agree with the level: running
        // means (exact over the first NOISE_MEMORY, then over about that many), each |Δ| clipped at NOISE_CLIP
        // times the estimate. Exact repeats say nothing about noise.
        const word = n[ib + I_SHIFT];
        const samples = word >>> NOISE_SAMPLES_SHIFT;
        const diff = v - last;
        f[b + F_TREND] += (diff / dt - f[b + F_TREND]) / Math.min(samples + 1, TREND_MEMORY);
        // Noise: the error of the level carried along the trend, once the window is full (before: |Δ|).
        const delta = Number.isNaN(det.level) ? Math.abs(diff) : Math.abs(v - det.level);
        if (Math.abs(diff) > r.flatTolerance && delta > 0) {
          const s = f32[ib + I_NOISE];
          f32[ib + I_NOISE] = s === 0 ? delta : s + (Math.min(delta, NOISE_CLIP * s) - s) / (samples + 1);
          if (samples + 1 < NOISE_MEMORY) n[ib + I_SHIFT] = word + (1 << NOISE_SAMPLES_SHIFT);
        }
      }
      run = 0;
    }
    if (!det.shifted) {
      const word = n[ib + I_SHIFT];
      n[ib + I_SHIFT] = run === 0 ? word & NOISE_SAMPLES_MASK : (word & ~SHIFT_RUN_MASK) | run;
    }

    // Outliers enter the window too: the median ignores isolated ones, and a run of them is a new level.
    if (!written) {
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
   * One more outlier in a row (`run` before it). Returns the new run length; when the run's values agree
   * with each other and it reaches `shiftCount`, the window is re-based on them (`details.shifted`).
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
    const det = this.details;
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
    det.shiftRun = run;
    if (run === 2 && (n[ib + I_SHIFT] & SHIFT_FIRST_REPLACED) !== 0) {
      // Two outliers in a row that agree are kept as a possible new level: the first, replaced when it came
      // (a run breaks on any reading that did not enter the window), is sent again with its raw value.
      det.restoreTs = lastTs;
      det.restoreValue = f[ring + ((head - 1 + W) % W)];
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
    det.shifted = true;
    return 0;
  }

  /**
   * An estimate of the field at `ts` from its record, or NaN when there is none within the rule's maximum gap.
   * `mean` averages the window; `median` is the level of the window carried along the trend to `ts` (see
   * LEVEL_DECAY; `level`, when the spike test already computed it). `locf` is the last accepted value,
   * `linear` extrapolates the last two accepted values (clamped to the gross range): a streaming node cannot
   * wait for the next value to interpolate.
   */
  private estimate(
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
        return trimmedWeightedMean(carried, count, this.levelWeights);
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

  /** Builds the flag of a value some check fired on and applies the action; returns that action. */
  private flagged(
    slot: number,
    r: ResolvedRule,
    ts: number,
    v: number,
    mask: number,
    payload: Record<string, unknown>,
    cb: number,
  ): Action {
    const c = this.store.deviceU32;
    const det = this.details;
    const checks: CheckName[] = [];
    const reasons: string[] = [];
    let action = 'flag' as Action;
    // A reading that agrees with the outliers before it may be a new level: doubted, never replaced.
    const newLevel = det.shiftRun > 1;
    const use = (check: CheckName, a: Action, counter: number, reason: string): void => {
      checks.push(check);
      reasons.push(reason);
      c[cb + counter]++;
      if (ACTION_RANK[a] > ACTION_RANK[action]) action = a;
    };
    const name = r.field;
    if (mask & ORDER)
      use(
        'order',
        'flag',
        C_ORDER,
        `${name} at ${ts} is not newer than the last reading (${det.prevTs}); state left unchanged`,
      );
    if (mask & RANGE_BAD)
      use('range', r.rangeAction, C_RANGE, `${name} ${v} is outside the gross range [${r.min}, ${r.max}]`);
    if (mask & RANGE_SUSPECT)
      use(
        'range',
        r.rangeAction,
        C_RANGE,
        `${name} ${v} is outside the suspect range [${r.suspectMin}, ${r.suspectMax}]`,
      );
    if (mask & SPIKE)
      use(
        'spike',
        newLevel ? 'flag' : r.spikeAction,
        C_SPIKE,
        `${name} ${v} is ${round2(Math.abs(v - det.level))} from ${round2(det.level)}, the level of the last ${det.windowSize} values carried along the trend (limit ${round2(det.threshold)})`,
      );
    if (mask & RATE)
      use(
        'rate',
        newLevel ? 'flag' : r.rateAction,
        C_RATE,
        `${name} changed by ${round2(Math.abs(v - det.ref))} in ${round2((ts - det.refTs) / 1000)} s since the last accepted value (limit ${round2(det.allowance)}: ${r.maxRate}/s and the noise)`,
      );
    if (mask & FLAT)
      use(
        'flatline',
        r.flatAction,
        C_FLAT,
        `${name} has not changed for ${det.flatRun} readings (${round2((ts - det.prevTs) / 1000)} s)`,
      );
    if (newLevel)
      reasons.push(
        det.shifted
          ? `${det.shiftRun} readings in a row agree on a new level: kept, the window starts from them`
          : `${det.shiftRun} readings in a row agree: kept as a possible new level`,
      );
    const code = mask & RANGE_BAD ? 4 : 3;
    const q: FieldQuality = {
      flag: code === 4 ? 'bad' : 'suspect',
      code,
      check: checks[0],
      raw: v,
      reason: reasons.join('; '),
    };
    if (checks.length > 1) q.checks = checks;
    if (action === 'replace') {
      const est = this.estimate(slot, r, ts, r.replaceWith, det.level);
      if (Number.isNaN(est)) q.reason += `; no ${r.replaceWith} replacement available, raw value kept`;
      else {
        q.flag = 'imputed';
        q.method = r.replaceWith;
        payload[name] = est;
        c[cb + C_IMPUTED]++;
        // The first outlier of a run: sent again with its raw value if the run turns out to be a new level.
        if (det.shiftRun === 0 && (mask & OUTLIER) !== 0)
          this.store.fieldI32[slot * FIELD_INTS + I_SHIFT] |= SHIFT_FIRST_REPLACED;
      }
    }
    if (!Number.isNaN(det.restoreTs)) this.restore(r, ts, det.restoreTs, det.restoreValue);
    (this.outcome.quality ??= {})[name] = q;
    return action;
  }

  /** Sends the first reading of a confirmed new level again, with its raw value instead of the replacement. */
  private restore(r: ResolvedRule, ts: number, at: number, raw: number): void {
    const name = r.field;
    const out = this.outcome;
    out.restored ??= [];
    let reading = out.restored.find((x) => x.timestamp === at);
    if (!reading) {
      reading = { timestamp: at, payload: {}, quality: {} };
      out.restored.push(reading);
    }
    reading.payload[name] = raw;
    reading.quality[name] = {
      flag: 'suspect',
      code: 3,
      check: 'spike',
      raw,
      reason: `${name} ${raw} was replaced, but the reading at ${ts} agrees with it: a possible new level, raw value restored`,
    };
  }

  /** A field that is absent, null or not a finite number: imputed when the rule allows, else flagged missing. */
  private missing(
    slot: number,
    r: ResolvedRule,
    ts: number,
    payload: Record<string, unknown>,
    cb: number,
  ): void {
    const c = this.store.deviceU32;
    const name = r.field;
    c[cb + C_MISSING]++;
    const raw = payload[name];
    const est = this.estimate(slot, r, ts, r.impute, NaN);
    let q: FieldQuality;
    if (Number.isNaN(est)) {
      q = {
        flag: 'missing',
        code: 9,
        check: 'missing',
        raw: null,
        reason:
          r.impute === 'none'
            ? `${name} is missing; imputation is off`
            : `${name} is missing and no good value within ${r.maxGapMs / 1000} s to impute from`,
      };
      if (raw === undefined) delete payload[name];
      else payload[name] = null;
    } else {
      q = {
        flag: 'imputed',
        code: 9,
        check: 'missing',
        method: r.impute as FieldQuality['method'],
        raw: null,
        reason: `${name} is missing; imputed by ${r.impute}`,
      };
      payload[name] = est;
      c[cb + C_IMPUTED]++;
    }
    (this.outcome.quality ??= {})[name] = q;
  }

  /** Adds the field to the gap's filled readings, interpolated between its last good value `from` and `v`. */
  private fill(r: ResolvedRule, ts: number, v: number, fromTs: number, from: number, deviceId: string): void {
    if (fromTs === -Infinity || ts - fromTs > r.maxGapMs) return;
    const step = this.expectedIntervalMs;
    const devLast = this.gapFrom; // slots continue the device's own timeline: last reading + k · interval
    const out = this.outcome;
    out.fills ??= [];
    for (let k = 1; k <= out.gapSlots; k++) {
      const at = Math.round(devLast + k * step);
      if (at <= fromTs || at >= ts) continue;
      let slotReading = out.fills.find((x) => x.timestamp === at);
      if (!slotReading) {
        slotReading = { timestamp: at, payload: {}, quality: {} };
        out.fills.push(slotReading);
      }
      const value = from + ((v - from) * (at - fromTs)) / (ts - fromTs);
      slotReading.payload[r.field] = value;
      slotReading.quality[r.field] = {
        flag: 'imputed',
        code: 9,
        check: 'gap',
        method: 'interpolated',
        raw: null,
        reason: `${deviceId} sent nothing at ${at}; ${r.field} interpolated between ${fromTs} and ${ts}`,
      };
    }
  }

  /** Per-device scorecard (all devices, or the one given). */
  scorecard(deviceId?: string): DeviceScorecard[] {
    return scorecards(this.store, this.expectedIntervalMs, deviceId);
  }
}
