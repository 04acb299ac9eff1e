import { compileCondition, ConditionError, type CompiledCondition } from './condition';

export const SEVERITIES = ['critical', 'major', 'minor', 'warning', 'indeterminate'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const RULE_KINDS = ['threshold', 'absence', 'rate', 'quality', 'fleet'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

/**
 * A rule as configured (node property or JSON). Conditions are text (`temperature > -10`) or data
 * (condition.ts). What the conditions may name depends on the kind:
 * - threshold: the reading's fields;
 * - rate: `rate`, the change of `field` per minute over `windowS`;
 * - quality: `share` (0..1) of the device's readings over `windowS` that were flagged or rejected;
 * - fleet: `share` (0..1) and `count` of the type's devices that meet `member` (or are silent for `silentS`),
 *   and `devices`, how many devices of the type are known;
 * - absence: no conditions; raised when a device sent nothing for `silentS`, cleared by its next reading.
 */
export interface RuleInput {
  name: string;
  kind: RuleKind;
  severity?: Severity;
  /** Only devices of this type; empty for every device (required for fleet rules). */
  deviceType?: string;
  raise?: unknown;
  /** Defaults to "the raise condition no longer holds"; a separate clear condition gives hysteresis. */
  clear?: unknown;
  /** The raise condition must hold this long (seconds, by reading time) and/or for this many readings. */
  raiseForS?: number;
  raiseForReadings?: number;
  clearForS?: number;
  clearForReadings?: number;
  field?: string;
  windowS?: number;
  /** quality: fewer readings than this in the window decide nothing. */
  minReadings?: number;
  silentS?: number;
  member?: unknown;
  description?: string;
}

export interface Rule {
  name: string;
  kind: RuleKind | 'external';
  severity: Severity;
  deviceType: string;
  raise?: CompiledCondition;
  clear?: CompiledCondition;
  raiseForMs: number;
  raiseForReadings: number;
  clearForMs: number;
  clearForReadings: number;
  field: string;
  windowMs: number;
  minReadings: number;
  silentMs: number;
  member?: CompiledCondition;
  /** A sentence for the alarm, e.g. "temperature > -10 for 300 s". */
  summary: string;
}

const NAME = /^[A-Za-z0-9_][\w.-]{0,63}$/;
const COMPUTED: Partial<Record<RuleKind, readonly string[]>> = {
  rate: ['rate'],
  quality: ['share'],
  fleet: ['share', 'count', 'devices'],
};
const MAX_RULES = 100;
const MAX_SPAN_S = 30 * 24 * 3600;

export class RuleError extends Error {}

/** Validates rules as configured; throws a RuleError naming the rule and the property at fault. */
export function compileRules(inputs: unknown): Rule[] {
  if (!Array.isArray(inputs)) throw new RuleError('rules must be a list');
  if (inputs.length > MAX_RULES) throw new RuleError(`at most ${MAX_RULES} rules per node`);
  const names = new Set<string>();
  return inputs.map((input, i) => {
    const rule = compileRule(input, i);
    if (names.has(rule.name)) throw new RuleError(`rule ${i + 1}: the name '${rule.name}' is used twice`);
    names.add(rule.name);
    return rule;
  });
}

/** A device type's alarm rules (registry), each limited to that type. */
export function typeRules(type: string, alarms: unknown): Record<string, unknown>[] {
  if (!Array.isArray(alarms)) throw new RuleError('alarm rules must be a list');
  return alarms.map((r, i) => {
    if (typeof r !== 'object' || r === null) throw new RuleError(`rule ${i + 1}: not an object`);
    return { ...(r as Record<string, unknown>), deviceType: type };
  });
}

function compileRule(input: unknown, index: number): Rule {
  const where = `rule ${index + 1}`;
  if (typeof input !== 'object' || input === null) throw new RuleError(`${where}: not an object`);
  const r = input as Partial<RuleInput>;
  if (typeof r.name !== 'string' || !NAME.test(r.name))
    throw new RuleError(`${where}: name must be 1-64 letters, digits, _ . - (got ${JSON.stringify(r.name)})`);
  const at = `rule '${r.name}'`;
  if (!RULE_KINDS.includes(r.kind as RuleKind))
    throw new RuleError(`${at}: kind must be one of ${RULE_KINDS.join(', ')}`);
  const kind = r.kind as RuleKind;
  const severity = r.severity ?? 'major';
  if (!SEVERITIES.includes(severity))
    throw new RuleError(`${at}: severity must be one of ${SEVERITIES.join(', ')}`);
  const deviceType = r.deviceType ?? '';
  if (typeof deviceType !== 'string') throw new RuleError(`${at}: deviceType must be text`);
  if (kind === 'fleet' && deviceType === '') throw new RuleError(`${at}: a fleet rule needs a device type`);

  const seconds = (key: keyof RuleInput, required: boolean, fallback = 0): number => {
    const v = r[key];
    if (v === undefined || v === '' || v === null) {
      if (required) throw new RuleError(`${at}: ${key} (seconds) is required for a ${kind} rule`);
      return fallback;
    }
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > MAX_SPAN_S)
      throw new RuleError(`${at}: ${key} must be a number of seconds from 0 to ${MAX_SPAN_S}`);
    if (required && n === 0) throw new RuleError(`${at}: ${key} must be more than 0 seconds`);
    return n * 1000;
  };
  const count = (key: keyof RuleInput, fallback: number): number => {
    const v = r[key];
    if (v === undefined || v === '' || v === null) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 1_000_000)
      throw new RuleError(`${at}: ${key} must be a whole number from 0 to 1000000`);
    return n;
  };
  const condition = (key: 'raise' | 'clear' | 'member', required: boolean, allowed?: readonly string[]) => {
    const v = r[key];
    if (v === undefined || v === '' || v === null) {
      if (required) throw new RuleError(`${at}: a ${kind} rule needs a ${key} condition`);
      return undefined;
    }
    try {
      return compileCondition(v, allowed);
    } catch (err) {
      if (err instanceof ConditionError) throw new RuleError(`${at}: ${key} condition: ${err.message}`);
      throw err;
    }
  };

  const rule: Rule = {
    name: r.name,
    kind,
    severity,
    deviceType,
    raiseForMs: seconds('raiseForS', false),
    raiseForReadings: count('raiseForReadings', 0),
    clearForMs: seconds('clearForS', false),
    clearForReadings: count('clearForReadings', 0),
    field: '',
    windowMs: 0,
    minReadings: 0,
    silentMs: 0,
    summary: '',
  };
  if (kind === 'absence') {
    rule.silentMs = seconds('silentS', true);
    rule.summary = `no reading for ${rule.silentMs / 1000} s`;
    return rule;
  }
  rule.raise = condition('raise', true, COMPUTED[kind]);
  rule.clear = condition('clear', false, COMPUTED[kind]);
  if (kind === 'rate') {
    if (typeof r.field !== 'string' || !NAME.test(r.field))
      throw new RuleError(`${at}: a rate rule needs the field whose change it measures`);
    rule.field = r.field;
    rule.windowMs = seconds('windowS', true);
  }
  if (kind === 'quality') {
    rule.windowMs = seconds('windowS', true);
    rule.minReadings = count('minReadings', 10);
  }
  if (kind === 'fleet') {
    rule.member = condition('member', false);
    rule.silentMs = seconds('silentS', false);
    if (!rule.member && rule.silentMs === 0)
      throw new RuleError(`${at}: a fleet rule counts devices that meet 'member' or are silent for silentS`);
  }
  const held = [
    rule.raiseForMs ? `${rule.raiseForMs / 1000} s` : '',
    rule.raiseForReadings ? `${rule.raiseForReadings} readings` : '',
  ].filter(Boolean);
  const subject = kind === 'rate' ? `${rule.field} change per minute: ` : '';
  rule.summary = `${subject}${rule.raise?.text ?? ''}${held.length ? ` for ${held.join(' and ')}` : ''}`;
  return rule;
}
