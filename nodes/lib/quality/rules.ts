/**
 * Field rules: which checks run on a field, with which limits, and what happens when one fires.
 * Input comes from the editor (strings, blanks) or from code; `resolveRule` turns it into numbers once,
 * merged with the gross range from the device type's JSON Schema, so the hot path never parses anything.
 */

/** What a fired check does to the value. */
export type Action = 'flag' | 'replace' | 'reject';
/** How a flagged value is replaced. `linear` extrapolates the last two good values (see docs/quality.md). */
export type ReplaceMethod = 'median' | 'locf' | 'linear';
/** How a missing value is imputed. */
export type ImputeMethod = 'none' | 'locf' | 'mean' | 'median' | 'linear';

/** A field rule as configured (editor list entry or code). Blank / absent means "default" or "off". */
export interface FieldRuleInput {
  field: string;
  preset?: string;
  /** Gross range: outside is a fail (QARTOD 4). Absent: the type schema's minimum/maximum, else unbounded. */
  min?: number | string | null;
  max?: number | string | null;
  /** Suspect range: outside is suspect (QARTOD 3). */
  suspectMin?: number | string | null;
  suspectMax?: number | string | null;
  rangeAction?: Action;
  /** Hampel identifier: on unless `spike` is false. */
  spike?: boolean;
  /** Threshold in robust standard deviations (default 3). */
  spikeK?: number | string | null;
  /**
   * The sensor's resolution, in the field's unit (default 0): no deviation this small is a spike or an
   * implausible rate, whatever the learned noise says.
   */
  spikeMinDeviation?: number | string | null;
  spikeAction?: Action;
  /** Largest plausible change per second, in the field's unit; blank = off. */
  maxRate?: number | string | null;
  rateAction?: Action;
  /** Flat line: flagged from the N-th identical reading in a row (blank/0 = off). */
  flatCount?: number | string | null;
  /** Flat line: flagged once a value has not changed for T seconds (blank/0 = off). */
  flatSeconds?: number | string | null;
  /** Readings closer than this count as identical (default 0). */
  flatTolerance?: number | string | null;
  flatAction?: Action;
  /** Level shift: this many outliers in a row that agree with each other are a new level (default 3, 0 = off). */
  shiftCount?: number | string | null;
  replaceWith?: ReplaceMethod;
  impute?: ImputeMethod;
  /** Never impute (or replace by LOCF/linear) from a good value older than this; also restarts the window. */
  maxGapS?: number | string | null;
}

/** A rule ready for the hot path: plain numbers, ±Infinity for "unbounded", 0 for "off". */
export interface ResolvedRule {
  field: string;
  min: number;
  max: number;
  suspectMin: number;
  suspectMax: number;
  rangeAction: Action;
  spike: boolean;
  spikeK: number;
  spikeMinDeviation: number;
  spikeAction: Action;
  maxRate: number;
  rateAction: Action;
  flatCount: number;
  flatMs: number;
  flatTolerance: number;
  flatAction: Action;
  shiftCount: number;
  replaceWith: ReplaceMethod;
  impute: ImputeMethod;
  maxGapMs: number;
  /** Listed explicitly: an absent value is "missing" (otherwise only null values are). */
  expected: boolean;
}

/** Defaults: flag and replace spikes (Hampel median), flag everything else, LOCF for up to 5 minutes. */
const DEFAULT_RULE: Omit<ResolvedRule, 'field' | 'expected'> = {
  min: -Infinity,
  max: Infinity,
  suspectMin: -Infinity,
  suspectMax: Infinity,
  rangeAction: 'flag',
  spike: true,
  spikeK: 3,
  spikeMinDeviation: 0,
  spikeAction: 'replace',
  maxRate: 0,
  rateAction: 'flag',
  flatCount: 0,
  flatMs: 0,
  flatTolerance: 0,
  flatAction: 'flag',
  shiftCount: 3,
  replaceWith: 'median',
  impute: 'median',
  maxGapMs: 300_000,
};

/**
 * Presets for common sensors (SI-ish units the presets name): physical limits (gross range, maximum plausible
 * rate) and the resolution typical of consumer/industrial sensors. The noise is not a preset: each device and
 * field learns its own. Override any of them per field.
 */
export const PRESETS: Record<string, { label: string; rule: Omit<FieldRuleInput, 'field'> }> = {
  temperature: {
    label: 'Temperature (°C)',
    rule: {
      min: -40,
      max: 85,
      suspectMin: -30,
      suspectMax: 60,
      spikeK: 3,
      spikeMinDeviation: 0.1,
      maxRate: 0.5,
      flatSeconds: 3600,
    },
  },
  humidity: {
    label: 'Relative humidity (%)',
    rule: { min: 0, max: 100, spikeK: 3, spikeMinDeviation: 0.1, maxRate: 2, flatSeconds: 3600 },
  },
  pressure: {
    label: 'Barometric pressure (hPa)',
    rule: {
      min: 300,
      max: 1100,
      suspectMin: 870,
      suspectMax: 1085,
      spikeK: 3,
      spikeMinDeviation: 0.05,
      maxRate: 0.2,
      flatSeconds: 21_600,
    },
  },
  power: {
    label: 'Electrical power (W)',
    // Loads switch on and off in steps: flag spikes but never replace them; 0 W for hours is normal.
    rule: { min: 0, spikeK: 5, spikeMinDeviation: 50, spikeAction: 'flag', impute: 'none' },
  },
};

/** A level-shift run is read back from the Hampel window: the engine also requires shiftCount ≤ window + 1. */
export const MAX_SHIFT_COUNT = 16;

const ACTIONS: readonly Action[] = ['flag', 'replace', 'reject'];
const REPLACE_METHODS: readonly ReplaceMethod[] = ['median', 'locf', 'linear'];
const IMPUTE_METHODS: readonly ImputeMethod[] = ['none', 'locf', 'mean', 'median', 'linear'];

/** A configuration mistake, reported at deploy time with the field and setting it concerns. */
export class RuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RuleError';
  }
}

/** Number from config: undefined for blank/absent, an error for anything not a finite number. */
function num(field: string, key: string, v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v.trim()) : NaN;
  if (!Number.isFinite(n))
    throw new RuleError(`field "${field}": ${key} must be a number (got ${JSON.stringify(v)})`);
  return n;
}

function nonNegative(field: string, key: string, v: unknown): number | undefined {
  const n = num(field, key, v);
  if (n !== undefined && n < 0)
    throw new RuleError(`field "${field}": ${key} must not be negative (got ${n})`);
  return n;
}

function oneOf<T extends string>(
  field: string,
  key: string,
  v: unknown,
  allowed: readonly T[],
): T | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (!allowed.includes(v as T))
    throw new RuleError(
      `field "${field}": ${key} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`,
    );
  return v as T;
}

/** The gross range a JSON Schema gives a property: minimum/maximum, exclusive bounds treated as inclusive. */
function schemaRange(schema: unknown, field: string): { min?: number; max?: number } {
  if (!schema || typeof schema !== 'object') return {};
  const props = (schema as { properties?: unknown }).properties;
  if (!props || typeof props !== 'object' || !Object.hasOwn(props, field)) return {};
  const p = (props as Record<string, unknown>)[field];
  if (!p || typeof p !== 'object') return {};
  const { minimum, maximum, exclusiveMinimum, exclusiveMaximum } = p as Record<string, unknown>;
  const pick = (a: unknown, b: unknown): number | undefined =>
    typeof a === 'number' && Number.isFinite(a)
      ? a
      : typeof b === 'number' && Number.isFinite(b)
        ? b
        : undefined;
  return { min: pick(minimum, exclusiveMinimum), max: pick(maximum, exclusiveMaximum) };
}

/**
 * Turns a configured rule (or none, for a field without a rule) into a resolved one. Precedence for every
 * setting: the rule itself, then its preset, then (gross range only) the device type's schema, then DEFAULT_RULE.
 */
export function resolveRule(
  field: string,
  input: FieldRuleInput | undefined,
  schema?: unknown,
): ResolvedRule {
  let merged: Omit<FieldRuleInput, 'field'> = {};
  if (input?.preset) {
    // Own keys only: a preset named "toString" or "__proto__" is unknown, not an object's inherited member.
    const preset = Object.hasOwn(PRESETS, input.preset) ? PRESETS[input.preset] : undefined;
    if (!preset) throw new RuleError(`field "${field}": unknown preset "${input.preset}"`);
    merged = { ...preset.rule };
  }
  if (input) {
    for (const [k, v] of Object.entries(input)) {
      if (v !== undefined && v !== null && v !== '') (merged as Record<string, unknown>)[k] = v;
    }
  }
  const fromSchema = schemaRange(schema, field);
  const d = DEFAULT_RULE;
  const rule: ResolvedRule = {
    field,
    min: num(field, 'min', merged.min) ?? fromSchema.min ?? d.min,
    max: num(field, 'max', merged.max) ?? fromSchema.max ?? d.max,
    suspectMin: num(field, 'suspectMin', merged.suspectMin) ?? d.suspectMin,
    suspectMax: num(field, 'suspectMax', merged.suspectMax) ?? d.suspectMax,
    rangeAction: oneOf(field, 'rangeAction', merged.rangeAction, ACTIONS) ?? d.rangeAction,
    spike: merged.spike ?? d.spike,
    spikeK: nonNegative(field, 'spikeK', merged.spikeK) ?? d.spikeK,
    spikeMinDeviation:
      nonNegative(field, 'spikeMinDeviation', merged.spikeMinDeviation) ?? d.spikeMinDeviation,
    spikeAction: oneOf(field, 'spikeAction', merged.spikeAction, ACTIONS) ?? d.spikeAction,
    maxRate: nonNegative(field, 'maxRate', merged.maxRate) ?? d.maxRate,
    rateAction: oneOf(field, 'rateAction', merged.rateAction, ACTIONS) ?? d.rateAction,
    flatCount: nonNegative(field, 'flatCount', merged.flatCount) ?? d.flatCount,
    flatMs: (nonNegative(field, 'flatSeconds', merged.flatSeconds) ?? d.flatMs / 1000) * 1000,
    flatTolerance: nonNegative(field, 'flatTolerance', merged.flatTolerance) ?? d.flatTolerance,
    flatAction: oneOf(field, 'flatAction', merged.flatAction, ACTIONS) ?? d.flatAction,
    shiftCount: nonNegative(field, 'shiftCount', merged.shiftCount) ?? d.shiftCount,
    replaceWith: oneOf(field, 'replaceWith', merged.replaceWith, REPLACE_METHODS) ?? d.replaceWith,
    impute: oneOf(field, 'impute', merged.impute, IMPUTE_METHODS) ?? d.impute,
    maxGapMs: (nonNegative(field, 'maxGapS', merged.maxGapS) ?? d.maxGapMs / 1000) * 1000,
    expected: input !== undefined,
  };
  if (rule.min > rule.max)
    throw new RuleError(`field "${field}": min (${rule.min}) is above max (${rule.max})`);
  if (rule.suspectMin > rule.suspectMax)
    throw new RuleError(
      `field "${field}": suspectMin (${rule.suspectMin}) is above suspectMax (${rule.suspectMax})`,
    );
  if (rule.flatCount === 1) throw new RuleError(`field "${field}": flatCount must be 0 (off) or at least 2`);
  if (rule.shiftCount === 1 || rule.shiftCount > MAX_SHIFT_COUNT || !Number.isInteger(rule.shiftCount))
    throw new RuleError(
      `field "${field}": shiftCount must be 0 (off) or a whole number from 2 to ${MAX_SHIFT_COUNT}`,
    );
  if (!(rule.maxGapMs > 0)) throw new RuleError(`field "${field}": maxGapS must be above 0`);
  return rule;
}
