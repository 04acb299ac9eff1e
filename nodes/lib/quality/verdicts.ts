/**
 * What a reading's fields get when they are not plainly good: the flag of a value a check fired on (with the
 * action of its rule applied), the flag or imputed value of a missing field, the interpolated slots of a gap.
 * Reads what the check found from the checks' scratch object; writes into the reading's outcome.
 */
import { type FieldChecks, FLAT, ORDER, OUTLIER, RANGE_BAD, RANGE_SUSPECT, RATE, SPIKE } from './checks';
import type { CheckName, FieldQuality } from './flags';
import type { Action, ResolvedRule } from './rules';
import { round2 } from './scorecard';
import { C_FLAT, C_IMPUTED, C_MISSING, C_ORDER, C_RANGE, C_RATE, C_SPIKE } from './state';

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

/**
 * Empties the reused outcome for the next reading. A function, so that the compiler does not take its fields for
 * undefined in the rest of `process`.
 */
export function clearOutcome(out: ReadingOutcome): ReadingOutcome {
  out.quality = undefined;
  out.rejected = undefined;
  out.gapSlots = 0;
  out.fills = undefined;
  out.restored = undefined;
  return out;
}

const ACTION_RANK: Record<Action, number> = { flag: 0, replace: 1, reject: 2 };

/**
 * Builds the flag of value `v` of field record `slot` (device counters at `cb`), on which the checks in `mask`
 * fired, and applies the rule's action: `replace` writes the estimate into `payload`, `reject` sets `out.rejected`
 * (the first field that rejects names the reason).
 */
export function flagValue(
  checker: FieldChecks,
  out: ReadingOutcome,
  slot: number,
  r: ResolvedRule,
  ts: number,
  v: number,
  mask: number,
  payload: Record<string, unknown>,
  cb: number,
): void {
  const c = checker.store.deviceU32;
  const found = checker.scratch;
  const checks: CheckName[] = [];
  const reasons: string[] = [];
  let action = 'flag' as Action;
  // A reading that agrees with the outliers before it may be a new level: doubted, never replaced.
  const newLevel = found.shiftRun > 1;
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
      `${name} at ${ts} is not newer than the last reading (${found.prevTs}); state left unchanged`,
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
      `${name} ${v} is ${round2(Math.abs(v - found.level))} from ${round2(found.level)}, the level of the last ${found.windowSize} values carried along the trend (limit ${round2(found.threshold)})`,
    );
  if (mask & RATE)
    use(
      'rate',
      newLevel ? 'flag' : r.rateAction,
      C_RATE,
      `${name} changed by ${round2(Math.abs(v - found.ref))} in ${round2((ts - found.refTs) / 1000)} s since the last accepted value (limit ${round2(found.allowance)}: ${r.maxRate}/s and the noise)`,
    );
  if (mask & FLAT)
    use(
      'flatline',
      r.flatAction,
      C_FLAT,
      `${name} has not changed for ${found.flatRun} readings (${round2((ts - found.prevTs) / 1000)} s)`,
    );
  if (newLevel)
    reasons.push(
      found.shifted
        ? `${found.shiftRun} readings in a row agree on a new level: kept, the window starts from them`
        : `${found.shiftRun} readings in a row agree: kept as a possible new level`,
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
    const est = checker.estimate(slot, r, ts, r.replaceWith, found.level);
    if (Number.isNaN(est)) q.reason += `; no ${r.replaceWith} replacement available, raw value kept`;
    else {
      q.flag = 'imputed';
      q.method = r.replaceWith;
      payload[name] = est;
      c[cb + C_IMPUTED]++;
      // The first outlier of a run: sent again with its raw value if the run turns out to be a new level.
      if (found.shiftRun === 0 && (mask & OUTLIER) !== 0) checker.markReplaced(slot);
    }
  }
  if (!Number.isNaN(found.restoreTs)) restore(out, r, ts, found.restoreTs, found.restoreValue);
  (out.quality ??= {})[name] = q;
  if (action === 'reject') out.rejected ??= { field: name, check: q.check, reason: q.reason };
}

/** Sends the first reading of a confirmed new level again, with its raw value instead of the replacement. */
function restore(out: ReadingOutcome, r: ResolvedRule, ts: number, at: number, raw: number): void {
  const name = r.field;
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
export function flagMissing(
  checker: FieldChecks,
  out: ReadingOutcome,
  slot: number,
  r: ResolvedRule,
  ts: number,
  payload: Record<string, unknown>,
  cb: number,
): void {
  const c = checker.store.deviceU32;
  const name = r.field;
  c[cb + C_MISSING]++;
  const raw = payload[name];
  const est = checker.estimate(slot, r, ts, r.impute, NaN);
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
    if (raw === undefined) Reflect.deleteProperty(payload, name);
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
  (out.quality ??= {})[name] = q;
}

/**
 * Adds the field to the filled readings of the gap of `out.gapSlots` slots of `step` ms after the device's previous
 * reading at `devLast` (slots continue the device's own timeline), interpolated between the field's last good value
 * `from` (at `fromTs`) and `v`.
 */
export function fillGap(
  out: ReadingOutcome,
  r: ResolvedRule,
  ts: number,
  v: number,
  fromTs: number,
  from: number,
  deviceId: string,
  devLast: number,
  step: number,
): void {
  if (fromTs === -Infinity || ts - fromTs > r.maxGapMs) return;
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
