/**
 * The data quality engine: QARTOD-style checks per device and field (gross range, spike via the Hampel
 * identifier, rate of change, flat line, order), actions (flag, replace, reject), imputation of missing values,
 * gap detection and optional gap filling, and a per-device scorecard.
 *
 * Hot path: a reading's fields are checked against fixed-size records in typed arrays (state.ts) with one
 * preallocated scratch buffer; nothing is allocated per field unless the field is flagged. Event time
 * (`ts`) drives every decision, so the same input sequence always gives the same output.
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
import * as layout from './state';
import { MemoryStateStore, type QualityStateStore } from './state';

// Local copies: a loader that compiles named imports to getters (tsx, esbuild) would otherwise put a
// function call behind every record offset on the hot path.
const { meanOf, medianOf, robustScale } = robust;
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
  F_PREV_OUT,
  F_PREV_OUT_TS,
  F_RING,
  F_VALUE,
  F_VALUE_TS,
  FIELD_INTS,
  I_SCALE,
  I_COUNT,
  I_FLAT_RUN,
  I_HEAD,
} = layout;

// Check bits.
const RANGE_BAD = 1;
const RANGE_SUSPECT = 2;
const SPIKE = 4;
const RATE = 8;
const FLAT = 16;
const ORDER = 32;

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

/** An imputed reading for a slot of a gap, at a deterministic timestamp. */
export interface FilledReading {
  timestamp: number;
  payload: Record<string, number>;
  quality: Record<string, FieldQuality>;
}

/**
 * What happened to one reading. The object is reused by the engine: read it before the next `process` call.
 * The values it points to (`quality`, `rejected`, `fills`) are new for each reading and may be kept.
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
}

export interface DeviceScorecard {
  device: string;
  readings: number;
  values: number;
  /** Percent of values flagged by each check. */
  flaggedPct: Record<'range' | 'spike' | 'rate' | 'flatline' | 'order', number>;
  missingPct: number;
  imputedPct: number;
  rejected: number;
  gapSlots: number;
  filled: number;
  /** Readings received / readings expected at the configured interval; null without one. */
  completeness: number | null;
  firstTs: number | null;
  lastTs: number | null;
}

const ACTION_RANK: Record<Action, number> = { flag: 0, replace: 1, reject: 2 };

const round2 = (x: number): number => Math.round(x * 100) / 100;

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
  private readonly scratch: Float64Array;
  /** Field names beyond maxFields, passed through unchecked (the first 100, for the node's warning). */
  readonly untracked = new Set<string>();
  private readonly outcome: ReadingOutcome = {
    quality: undefined,
    rejected: undefined,
    gapSlots: 0,
    fills: undefined,
  };
  // Details of the last `check` call, read only when it flagged something.
  private median = NaN;
  private threshold = NaN;
  private windowSize = 0;
  private prevValue = NaN;
  private prevValueTs = NaN;
  private prevTs = NaN;
  private flatRun = 0;
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
      resolveRule(r.field, r); // reports configuration errors now, not on the first message
      this.explicit.set(r.field, r);
      this.explicitNames.push(r.field);
    }
    this.checkOtherFields = opts.checkOtherFields ?? true;
    this.expectedIntervalMs = opts.expectedIntervalMs ?? 0;
    this.fillGaps = opts.fillGaps ?? false;
    this.maxFill = opts.maxFill ?? 10;
    this.schemaFor = opts.schemaFor;
    this.scratch = new Float64Array(this.window);
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
    const rule =
      input || this.checkOtherFields
        ? resolveRule(name, input, type ? this.schemaFor?.(type) : undefined)
        : null;
    table[fi] = rule;
    return rule;
  }

  /**
   * Checks one reading of `deviceId` at event time `ts` (ms). Replaced and imputed values are written into
   * `payload`; flags say what was done and keep the raw value. `upstream` is an incoming `msg.quality`: a field
   * it marks and the payload lacks counts as missing. `now` (wall clock) only drives TTL eviction.
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
      if (fi < 0) continue;
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

  /** Runs the checks on value `v` and updates the record unless the reading is out of order. Returns the check bits. */
  private check(slot: number, r: ResolvedRule, ts: number, v: number): number {
    const f = this.store.fieldF64;
    const n = this.store.fieldI32;
    const W = this.window;
    const b = slot * this.store.fieldStride;
    const ib = slot * FIELD_INTS;
    if (ts <= f[b + F_LAST_TS]) {
      this.prevTs = f[b + F_LAST_TS];
      return ORDER; // passed through flagged; the record stays as it was
    }
    f[b + F_LAST_TS] = ts;
    let count = n[ib + I_COUNT];
    if (count > 0 && ts - f[b + F_VALUE_TS] > r.maxGapMs) {
      // After a long silence the window describes another time: start again rather than judge against it.
      count = 0;
      n[ib + I_COUNT] = 0;
      n[ib + I_HEAD] = 0;
      n[ib + I_FLAT_RUN] = 0;
      this.store.fieldF32[ib + I_SCALE] = 0;
    }
    this.median = NaN;
    if (v < r.min || v > r.max) return RANGE_BAD; // a value outside the sensor's range never enters the window

    let mask = v < r.suspectMin || v > r.suspectMax ? RANGE_SUSPECT : 0;
    const ring = b + F_RING;
    if (r.spike && count === W) {
      const med = medianOf(f, ring, count, this.scratch);
      // The scale of 7 values is itself noisy: a window that happens to be tight would call ordinary noise a
      // spike (9 % of Gaussian noise at k = 3). The field's long-run scale (mean of past window scales over
      // about 32 readings) is a floor, which brings that to the expected ~1 %.
      const windowScale = robustScale(f, ring, count, med, this.scratch);
      const f32 = this.store.fieldF32;
      const longRun = f32[ib + I_SCALE];
      f32[ib + I_SCALE] = longRun === 0 ? windowScale : longRun + (windowScale - longRun) / 32;
      const thr = Math.max(r.spikeK * Math.max(windowScale, longRun), r.spikeMinDeviation);
      this.median = med;
      if (Math.abs(v - med) > thr) {
        mask |= SPIKE;
        this.threshold = thr;
        this.windowSize = count;
      }
    }
    const last = f[b + F_VALUE];
    const lastTs = f[b + F_VALUE_TS];
    if (r.maxRate > 0 && count > 0 && Math.abs(v - last) > (r.maxRate * (ts - lastTs)) / 1000) {
      mask |= RATE;
      this.prevValue = last;
      this.prevValueTs = lastTs;
    }
    if (r.flatCount > 0 || r.flatMs > 0) {
      let run = 1;
      if (count > 0 && Math.abs(v - last) <= r.flatTolerance) run = n[ib + I_FLAT_RUN] + 1;
      else f[b + F_FLAT_SINCE] = ts;
      n[ib + I_FLAT_RUN] = run;
      if (
        (r.flatCount > 0 && run >= r.flatCount) ||
        (r.flatMs > 0 && run > 1 && ts - f[b + F_FLAT_SINCE] >= r.flatMs)
      ) {
        mask |= FLAT;
        this.flatRun = run;
        this.prevTs = f[b + F_FLAT_SINCE];
      }
    }
    // Spikes enter the window too: the median ignores them, and a genuine level shift is followed after W/2 readings.
    const head = n[ib + I_HEAD];
    f[ring + head] = v;
    n[ib + I_HEAD] = head + 1 === W ? 0 : head + 1;
    if (count < W) n[ib + I_COUNT] = count + 1;
    f[b + F_VALUE] = v;
    f[b + F_VALUE_TS] = ts;
    if (mask === 0) {
      f[b + F_PREV_OUT_TS] = f[b + F_OUT_TS];
      f[b + F_PREV_OUT] = f[b + F_OUT];
      f[b + F_OUT_TS] = ts;
      f[b + F_OUT] = v;
    }
    return mask;
  }

  /**
   * An estimate of the field at `ts` from its record, or NaN when there is none within the rule's maximum gap.
   * `median`/`mean` use the window, `locf` the last good value, `linear` extrapolates the last two good values
   * (clamped to the gross range): a streaming node cannot wait for the next value to interpolate.
   */
  private estimate(slot: number, r: ResolvedRule, ts: number, method: ReplaceMethod | ImputeMethod): number {
    const f = this.store.fieldF64;
    const b = slot * this.store.fieldStride;
    const count = this.store.fieldI32[slot * FIELD_INTS + I_COUNT];
    switch (method) {
      case 'median':
      case 'mean': {
        if (count === 0 || ts - f[b + F_VALUE_TS] > r.maxGapMs) return NaN;
        if (method === 'mean') return meanOf(f, b + F_RING, count);
        return Number.isNaN(this.median) ? medianOf(f, b + F_RING, count, this.scratch) : this.median;
      }
      case 'locf':
      case 'linear': {
        const outTs = f[b + F_OUT_TS];
        const age = ts - outTs;
        if (outTs === -Infinity || age < 0 || age > r.maxGapMs) return NaN;
        const prevTs = f[b + F_PREV_OUT_TS];
        if (method === 'locf' || prevTs === -Infinity || ts - prevTs > r.maxGapMs) return f[b + F_OUT];
        const slope = (f[b + F_OUT] - f[b + F_PREV_OUT]) / (outTs - prevTs);
        return Math.min(r.max, Math.max(r.min, f[b + F_OUT] + slope * age));
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
    const checks: CheckName[] = [];
    const reasons: string[] = [];
    let action = 'flag' as Action;
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
        `${name} at ${ts} is not newer than the last reading (${this.prevTs}); state left unchanged`,
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
        r.spikeAction,
        C_SPIKE,
        `${name} ${v} is ${round2(Math.abs(v - this.median))} from the median ${this.median} of the last ${this.windowSize} values (limit ${round2(this.threshold)})`,
      );
    if (mask & RATE)
      use(
        'rate',
        r.rateAction,
        C_RATE,
        `${name} changed by ${round2(Math.abs(v - this.prevValue))} in ${round2((ts - this.prevValueTs) / 1000)} s (limit ${r.maxRate}/s)`,
      );
    if (mask & FLAT)
      use(
        'flatline',
        r.flatAction,
        C_FLAT,
        `${name} has not changed for ${this.flatRun} readings (${round2((ts - this.prevTs) / 1000)} s)`,
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
      const est = this.estimate(slot, r, ts, r.replaceWith);
      if (Number.isNaN(est)) q.reason += `; no ${r.replaceWith} replacement available, raw value kept`;
      else {
        q.flag = 'imputed';
        q.method = r.replaceWith;
        payload[name] = est;
        c[cb + C_IMPUTED]++;
      }
    }
    (this.outcome.quality ??= {})[name] = q;
    return action;
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
    const est = this.estimate(slot, r, ts, r.impute);
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
    const cards: DeviceScorecard[] = [];
    const d = this.store.deviceF64;
    const c = this.store.deviceU32;
    const card = (id: string, dev: number): void => {
      const b = dev * DEVICE_DOUBLES;
      const cb = dev * DEVICE_COUNTERS;
      const values = c[cb + C_FIELD_VALUES];
      const missing = c[cb + C_MISSING];
      const pct = (x: number, of: number): number => (of > 0 ? round2((100 * x) / of) : 0);
      const readings = c[cb + C_READINGS];
      const gaps = c[cb + C_GAP_SLOTS];
      cards.push({
        device: id,
        readings,
        values,
        flaggedPct: {
          range: pct(c[cb + C_RANGE], values),
          spike: pct(c[cb + C_SPIKE], values),
          rate: pct(c[cb + C_RATE], values),
          flatline: pct(c[cb + C_FLAT], values),
          order: pct(c[cb + C_ORDER], values),
        },
        missingPct: pct(missing, values + missing),
        imputedPct: pct(c[cb + C_IMPUTED], values + missing),
        rejected: c[cb + C_REJECTED],
        gapSlots: gaps,
        filled: c[cb + C_FILLED],
        completeness:
          this.expectedIntervalMs > 0 && readings > 0 ? round2(readings / (readings + gaps)) : null,
        firstTs: Number.isNaN(d[b + D_FIRST_TS]) ? null : d[b + D_FIRST_TS],
        lastTs: d[b + D_LAST_TS] === -Infinity ? null : d[b + D_LAST_TS],
      });
    };
    if (deviceId !== undefined) {
      const dev = this.store.device(deviceId, false);
      if (dev >= 0) card(deviceId, dev);
    } else this.store.forEachDevice(card);
    return cards;
  }
}
