/**
 * The command lifecycle (docs/commands.md, Lifecycle):
 *
 *   QUEUED ──> SENT ──> DELIVERED ──> SUCCEEDED | FAILED | REJECTED | TIMED_OUT
 *     │          └──────────────────> SUCCEEDED | FAILED | REJECTED | TIMED_OUT
 *     └──> EXPIRED | CANCELED
 *
 * A command has exactly one final state; once final, nothing moves it again. A command past its expiry is never
 * sent: QUEUED -> SENT is only allowed before `expiresAt` (checked by the dispatcher at the moment of sending).
 */
export type CommandState =
  | 'QUEUED'
  | 'SENT'
  | 'DELIVERED'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'REJECTED'
  | 'TIMED_OUT'
  | 'EXPIRED'
  | 'CANCELED';

export type FinalState = Extract<
  CommandState,
  'SUCCEEDED' | 'FAILED' | 'REJECTED' | 'TIMED_OUT' | 'EXPIRED' | 'CANCELED'
>;

const DEVICE_ANSWERS: readonly CommandState[] = ['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT'];

const NEXT: Record<CommandState, readonly CommandState[]> = {
  QUEUED: ['SENT', 'EXPIRED', 'CANCELED'],
  // SENT -> SENT is the one re-send of an unanswered command after a restart.
  SENT: ['SENT', 'DELIVERED', ...DEVICE_ANSWERS],
  DELIVERED: ['SENT', ...DEVICE_ANSWERS],
  SUCCEEDED: [],
  FAILED: [],
  REJECTED: [],
  TIMED_OUT: [],
  EXPIRED: [],
  CANCELED: [],
};

/** Every state, in lifecycle order. */
export const COMMAND_STATES = Object.keys(NEXT) as readonly CommandState[];

export function isFinal(state: CommandState): state is FinalState {
  return NEXT[state].length === 0;
}

export function canTransition(from: CommandState, to: CommandState): boolean {
  return NEXT[from].includes(to);
}

/** One step of a command's history: for output 2, the `commands` measurement and the audit trail. */
export interface Transition {
  state: CommandState;
  at: number;
  /** Why, when it was not the plain next step (e.g. 'device revoked', 'kill switch', 're-sent after restart'). */
  reason?: string;
}

/** A command as the dispatcher tracks and persists it. */
export interface CommandRecord {
  id: string;
  deviceId: string;
  name: string;
  params: Record<string, unknown>;
  state: CommandState;
  createdAt: number;
  /** After this instant the command is never sent (ttl). */
  expiresAt: number;
  timeoutMs: number;
  /** Last time it was published; the timeout runs from here. */
  sentAt?: number;
  /** How many times it was published (at most 2: the original and one re-send after a restart). */
  attempts: number;
  history: Transition[];
  result?: unknown;
  error?: string;
}

export class IllegalTransitionError extends Error {
  constructor(record: CommandRecord, to: CommandState) {
    super(`command ${record.id}: ${record.state} -> ${to} is not a legal transition`);
    this.name = 'IllegalTransitionError';
  }
}

/** Moves `record` to `to` (throws on an illegal step) and appends the transition to its history. */
export function transition(record: CommandRecord, to: CommandState, at: number, reason?: string): Transition {
  if (!canTransition(record.state, to)) throw new IllegalTransitionError(record, to);
  record.state = to;
  const step: Transition = reason === undefined ? { state: to, at } : { state: to, at, reason };
  record.history.push(step);
  return step;
}
