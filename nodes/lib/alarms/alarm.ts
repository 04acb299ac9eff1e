import type { RuleKind, Severity } from './rules';

/** Rule kinds plus `external`: an alarm raised and cleared by another system (Alertmanager). */
export type AlarmKind = RuleKind | 'external';

/**
 * The lifecycle (ThingsBoard's): ACTIVE_UNACK → ACTIVE_ACK → CLEARED_ACK, or ACTIVE_UNACK → CLEARED_UNACK →
 * CLEARED_ACK. An alarm is open until it is both cleared and acknowledged.
 */
export type AlarmState = 'ACTIVE_UNACK' | 'ACTIVE_ACK' | 'CLEARED_UNACK' | 'CLEARED_ACK';
export const ALARM_STATES: readonly AlarmState[] = [
  'ACTIVE_UNACK',
  'ACTIVE_ACK',
  'CLEARED_UNACK',
  'CLEARED_ACK',
];

export type Values = Record<string, unknown>;

export interface Alarm {
  id: string;
  device: string;
  deviceType: string;
  rule: string;
  kind: AlarmKind;
  severity: Severity;
  state: AlarmState;
  /** e.g. "temperature > -10 for 300 s" */
  summary: string;
  /** Times raised while active, the first raise included. */
  count: number;
  startTs: number;
  /** Last time the raise condition held. */
  lastTs: number;
  /** The values that raised it. */
  raiseValues: Values;
  /** The latest values that met the raise condition. */
  lastValues: Values;
  ackTs?: number;
  ackBy?: string;
  clearTs?: number;
  /** The values that cleared it; absent when cleared by hand. */
  clearValues?: Values;
  clearedBy?: string;
}

export type TransitionKind = 'raised' | 'acknowledged' | 'cleared';

/** One lifecycle step, as the node sends it and as it is stored in InfluxDB. */
export interface Transition {
  transition: TransitionKind;
  from: AlarmState | null;
  to: AlarmState;
  at: number;
  /** A copy of the alarm after the step. */
  alarm: Alarm;
}

export const isActive = (s: AlarmState): boolean => s === 'ACTIVE_UNACK' || s === 'ACTIVE_ACK';
export const isAcked = (s: AlarmState): boolean => s === 'ACTIVE_ACK' || s === 'CLEARED_ACK';

/** The state after acknowledging, or undefined when `s` is already acknowledged. */
export function ackedState(s: AlarmState): AlarmState | undefined {
  if (s === 'ACTIVE_UNACK') return 'ACTIVE_ACK';
  if (s === 'CLEARED_UNACK') return 'CLEARED_ACK';
  return undefined;
}

/** The state after clearing, or undefined when `s` is already cleared. */
export function clearedState(s: AlarmState): AlarmState | undefined {
  if (s === 'ACTIVE_UNACK') return 'CLEARED_UNACK';
  if (s === 'ACTIVE_ACK') return 'CLEARED_ACK';
  return undefined;
}
