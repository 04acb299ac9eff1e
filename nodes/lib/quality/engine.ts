/**
 * The data quality engine: per device and field checks (checks.ts), what a flagged or missing value becomes
 * (verdicts.ts), imputation of missing values, gap detection and optional gap filling. This file routes a
 * reading's fields to their records and rules; the per-device scorecard is in scorecard.ts.
 *
 * Hot path: a reading's fields are checked against fixed-size records in typed arrays (state.ts); nothing is
 * allocated per field unless the field is flagged. Event time (`ts`) drives every decision, so the same input
 * sequence always gives the same output.
 */
import { FieldChecks } from './checks';
import { type FieldRuleInput, type ResolvedRule, resolveRule } from './rules';
import { scorecards, type DeviceScorecard } from './scorecard';
import * as layout from './state';
import { MemoryStateStore, type QualityStateStore } from './state';
import { clearOutcome, fillGap, flagMissing, flagValue, type ReadingOutcome } from './verdicts';

export type { DeviceScorecard } from './scorecard';
export type { FilledReading, ReadingOutcome } from './verdicts';

// Local copies: a loader that compiles named imports to getters (tsx, esbuild) would otherwise put a
// function call behind every record offset on the hot path.
const {
  C_FIELD_VALUES,
  C_FILLED,
  C_GAP_SLOTS,
  C_READINGS,
  C_REJECTED,
  D_FIRST_TS,
  D_LAST_SEEN,
  D_LAST_TS,
  DEVICE_COUNTERS,
  DEVICE_DOUBLES,
  F_OUT,
  F_OUT_TS,
} = layout;

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

/** A device type whose readings carry numeric fields beyond the node's field table. */
export interface UntrackedNotice {
  type: string;
  fields: string[];
}

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
  /** Field names beyond maxFields, passed through unchecked (the first 100). */
  readonly untracked = new Set<string>();
  /** Device types already reported with untracked fields (at most 100), and the report not yet taken. */
  private readonly untrackedTypes = new Set<string>();
  private untrackedNotice: UntrackedNotice | undefined;
  private readonly checks: FieldChecks;
  private readonly outcome: ReadingOutcome = {
    quality: undefined,
    rejected: undefined,
    gapSlots: 0,
    fills: undefined,
    restored: undefined,
  };

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
    this.checks = new FieldChecks(this.store, this.window);
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
    const out = clearOutcome(this.outcome);
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
    let gapFrom = NaN; // the device's previous reading time when this one ends a gap: where filled slots start
    if (ts > devLastTs) {
      if (this.expectedIntervalMs > 0 && devLastTs !== -Infinity) {
        gapSlots = Math.max(0, Math.round((ts - devLastTs) / this.expectedIntervalMs) - 1);
        c[cb + C_GAP_SLOTS] += gapSlots;
        gapFrom = devLastTs;
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
        flagMissing(this.checks, out, slot, rule, ts, payload, cb);
        continue;
      }
      // The last good value before this one, read before check() moves it on: where a gap fill starts.
      const fromTs = filling ? store.fieldF64[slot * store.fieldStride + F_OUT_TS] : -Infinity;
      const from = filling ? store.fieldF64[slot * store.fieldStride + F_OUT] : 0;
      c[cb + C_FIELD_VALUES]++;
      const mask = this.checks.check(slot, rule, ts, v);
      if (mask === 0) {
        if (filling) fillGap(out, rule, ts, v, fromTs, from, deviceId, gapFrom, this.expectedIntervalMs);
        continue;
      }
      flagValue(this.checks, out, slot, rule, ts, v, mask, payload, cb);
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
    if (out.fills) {
      out.fills.sort((a, b) => a.timestamp - b.timestamp);
      c[cb + C_FILLED] += out.fills.length;
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
    if (fi === undefined) return;
    const slot = this.store.field(dev, fi, false);
    if (slot < 0) return;
    const rule = this.ruleFor(type, fi);
    if (rule !== null) flagMissing(this.checks, this.outcome, slot, rule, ts, payload, cb);
  }

  /** Per-device scorecard (all devices, or the one given). */
  scorecard(deviceId?: string): DeviceScorecard[] {
    return scorecards(this.store, this.expectedIntervalMs, deviceId);
  }
}
