import { EventEmitter } from 'node:events';
import { RateLimiter } from '../broker/limits';
import { systemClock, type Clock } from '../clock';
import type { DeviceDirectory, DeviceLink, DeviceMessage } from '../device-contracts';
import { counter } from '../metrics';
import { RejectionError } from '../rejection';
import { CommandLog, type ControlState, type SwitchState } from './command-log';
import { RequestValidator, type CommandRequest } from './request';
import { isFinal, transition, type CommandRecord, type CommandState, type Transition } from './states';

export interface DispatcherOptions {
  link: DeviceLink;
  directory: DeviceDirectory;
  /** The append log (in the Node-RED user dir). */
  logFile: string;
  /** Defaults when the request and the device type say nothing. */
  timeoutMs: number;
  ttlMs: number;
  /** Most QUEUED commands per device; more are refused with QUEUE_FULL. */
  queueBound: number;
  /** Most commands published per device per second (a burst of this many); the rest wait QUEUED. */
  ratePerSecond: number;
  /** Most commands tracked at once (queued, in flight and retained finished ones). */
  maxCommands?: number;
  /** How long and how many finished commands are remembered, for idempotency and look-ups. */
  retainFinishedMs?: number;
  maxFinished?: number;
  /** Time and timers; the system clock unless a test drives time itself. */
  clock?: Clock;
}

/** The extra publish options a command carries; an MQTT 5 link maps them to properties, others ignore them. */
export interface CommandPublishOptions {
  qos: 1;
  /** MQTT 5 correlation data. */
  correlationId: string;
  /** MQTT 5 message expiry. */
  expiresAt: number;
}

/** What the device receives on `devices/{id}/commands` (docs/commands.md). */
export interface CommandPayload {
  id: string;
  name: string;
  params: Record<string, unknown>;
  expiresAt: number;
}

export type AckStatus = 'accepted' | 'succeeded' | 'failed' | 'rejected';
const ACK_FINAL: Record<Exclude<AckStatus, 'accepted'>, CommandState> = {
  succeeded: 'SUCCEEDED',
  failed: 'FAILED',
  rejected: 'REJECTED',
};

export type IgnoredAckReason = 'malformed' | 'unknown' | 'wrong_device' | 'duplicate' | 'late' | 'not_sent';

/** Every use of the kill switch or safe mode: who asked is the caller's business (`by`), we record it. */
export interface AuditEvent {
  event: 'kill-switch' | 'safe-mode';
  on: boolean;
  deviceId?: string;
  reason?: string;
  by?: string;
  at: number;
  canceled: number;
}

const transitionsTotal = counter('iotb_commands_transitions_total', 'Command state transitions, by state', [
  'state',
] as const);
const ignoredAcksTotal = counter(
  'iotb_commands_ignored_acks_total',
  'Command acks ignored: duplicate, late, from another device, unknown or malformed',
  ['reason'] as const,
);

/** An ack that moved no command, and why. */
export interface IgnoredAck {
  deviceId: string;
  id: string | undefined;
  reason: IgnoredAckReason;
}

/** What a CommandDispatcher emits. */
export interface DispatcherEvents {
  /** Every step of every command, as it is logged. */
  transition: [record: CommandRecord, step: Transition];
  /** Once per command, when it reaches its final state. */
  final: [record: CommandRecord];
  ignoredAck: [ack: IgnoredAck];
  /** Every use of the kill switch or safe mode. */
  audit: [event: AuditEvent];
  /**
   * Operational failures (a publish or a log write that failed); the command still ends in a final state by
   * its timeout.
   */
  error: [error: Error];
}

/** Dispatches commands to devices and tracks each to exactly one final state (see states.ts). */
export class CommandDispatcher extends EventEmitter<DispatcherEvents> {
  private readonly commands = new Map<string, CommandRecord>();
  /** QUEUED commands per device, in submission order. */
  private readonly queues = new Map<string, CommandRecord[]>();
  /** Finished command ids in order of finishing, for retention. */
  private readonly finished = new Map<string, number>();
  private readonly timers = new Map<string, unknown>();
  private readonly pumpTimers = new Map<string, unknown>();
  /** Per device: `ratePerSecond` sustained, as many at once (at least one). */
  private readonly rate: RateLimiter;
  /** In flight when the process stopped and not yet re-sent: re-sent once when the device is online. */
  private readonly resendPending = new Set<string>();
  private readonly control: ControlState;
  private readonly log: CommandLog;
  private readonly validator: RequestValidator;
  private inFlight = 0;
  private queued = 0;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly clock: Clock;

  constructor(private readonly opts: DispatcherOptions) {
    super();
    this.clock = opts.clock ?? systemClock;
    this.validator = new RequestValidator(opts.directory);
    // Evicting the least recently used of 100,000 devices only gives that device a fresh burst.
    this.rate = new RateLimiter(opts.ratePerSecond, Math.max(1, opts.ratePerSecond), 100_000, () =>
      this.clock.now(),
    );
    const saved = CommandLog.read(opts.logFile);
    this.control = saved.control;
    this.log = new CommandLog(opts.logFile);

    const onMessage = (m: DeviceMessage): void => {
      if (m.kind === 'commands/ack') this.handleAck(m.device.id, m.payload);
    };
    // Sending starts when the device listens on its commands topic, not when it connects: a command
    // published between CONNECT and SUBSCRIBE would be lost.
    const onSubscribed = (deviceId: string): void => this.deviceReady(deviceId);
    const onDelivered = (deviceId: string, topic: string, payload: Buffer): void =>
      this.handleDelivered(deviceId, topic, payload);
    const onGone = (reason: string) => (deviceId: string) => this.cancelQueued(deviceId, reason);
    const onRevoked = onGone('device revoked');
    const onDisabled = onGone('device disabled');
    opts.link.on('message', onMessage);
    opts.link.on('subscribed', onSubscribed);
    opts.link.on('delivered', onDelivered);
    opts.directory.on('revoked', onRevoked);
    opts.directory.on('disabled', onDisabled);
    this.unsubscribe = () => {
      opts.link.off('message', onMessage);
      opts.link.off('subscribed', onSubscribed);
      opts.link.off('delivered', onDelivered);
      opts.directory.off('revoked', onRevoked);
      opts.directory.off('disabled', onDisabled);
    };
    this.restore(saved.commands);
  }

  get killSwitch(): SwitchState {
    return this.control.killSwitch;
  }

  safeMode(deviceId: string): boolean {
    return this.control.safeMode.has(deviceId);
  }

  get safeModeDevices(): string[] {
    return [...this.control.safeMode.keys()];
  }

  get(id: string): CommandRecord | undefined {
    return this.commands.get(id);
  }

  /**
   * A device's tracked commands whose state `accepts`, oldest first, at most the newest `limit`. Walks every
   * tracked command (at most `maxCommands`, default 100,000): an operator's query, not a hot path.
   */
  list(deviceId: string, accepts: (state: CommandState) => boolean, limit: number): CommandRecord[] {
    const found: CommandRecord[] = [];
    for (const r of this.commands.values()) if (r.deviceId === deviceId && accepts(r.state)) found.push(r);
    found.sort((a, b) => a.createdAt - b.createdAt);
    return found.length > limit ? found.slice(found.length - limit) : found;
  }

  stats(): { queued: number; inFlight: number; tracked: number } {
    return { queued: this.queued, inFlight: this.inFlight, tracked: this.commands.size };
  }

  /**
   * Accepts a command (QUEUED) and sends it at once when the device is online and within its rate.
   * Throws a `RejectionError` when refused; nothing is stored then.
   */
  submit(req: CommandRequest): CommandRecord {
    if (this.control.killSwitch.on)
      throw new RejectionError(
        'command',
        'KILL_SWITCH',
        'the command kill switch is on: no commands are sent',
        {
          since: this.control.killSwitch.at,
          reason: this.control.killSwitch.reason,
        },
      );
    const cmd = this.validator.validate(req, this.opts);
    const existing = this.commands.get(cmd.id);
    if (existing)
      throw new RejectionError(
        'command',
        'DUPLICATE_ID',
        `command ${cmd.id} was already submitted; not run again`,
        {
          deviceId: existing.deviceId,
          state: existing.state,
        },
      );
    if (this.control.safeMode.has(cmd.deviceId))
      throw new RejectionError(
        'command',
        'SAFE_MODE',
        `device ${cmd.deviceId} is in safe mode: no commands are sent`,
      );
    const queue = this.queues.get(cmd.deviceId);
    if (queue && queue.length >= this.opts.queueBound)
      throw new RejectionError(
        'command',
        'QUEUE_FULL',
        `device ${cmd.deviceId} already has ${queue.length} queued commands`,
        {
          queueBound: this.opts.queueBound,
        },
      );
    if (this.commands.size >= (this.opts.maxCommands ?? 100_000)) this.pruneFinished(true);
    if (this.commands.size >= (this.opts.maxCommands ?? 100_000))
      throw new RejectionError('command', 'OVERLOADED', 'too many commands are in progress; try again later');

    const now = this.clock.now();
    const record: CommandRecord = {
      id: cmd.id,
      deviceId: cmd.deviceId,
      name: cmd.name,
      params: cmd.params,
      state: 'QUEUED',
      createdAt: now,
      expiresAt: now + cmd.ttlMs,
      timeoutMs: cmd.timeoutMs,
      attempts: 0,
      history: [{ state: 'QUEUED', at: now }],
    };
    this.commands.set(record.id, record);
    this.enqueue(record);
    this.changed(record, record.history[0]);
    this.pump(record.deviceId);
    return record;
  }

  /** Cancels a QUEUED command (one that was sent can no longer be called back). */
  cancel(id: string, reason = 'canceled'): boolean {
    const record = this.commands.get(id);
    if (!record || record.state !== 'QUEUED') return false;
    this.finish(record, 'CANCELED', { reason });
    return true;
  }

  /** The global kill switch: on refuses every new command and cancels every queued one. Persisted, audited. */
  setKillSwitch(on: boolean, reason?: string, by?: string): AuditEvent {
    const at = this.clock.now();
    this.control.killSwitch = reason === undefined ? { on, at } : { on, at, reason };
    this.log.putKillSwitch(this.control.killSwitch);
    let canceled = 0;
    if (on)
      for (const deviceId of [...this.queues.keys()]) canceled += this.cancelQueued(deviceId, 'kill switch');
    return this.audit({ event: 'kill-switch', on, reason, by, at, canceled });
  }

  /** Safe mode for one device: refuses its new commands and cancels its queued ones. Persisted, audited. */
  setSafeMode(deviceId: string, on: boolean, reason?: string, by?: string): AuditEvent {
    const at = this.clock.now();
    const s: SwitchState = reason === undefined ? { on, at } : { on, at, reason };
    if (on) this.control.safeMode.set(deviceId, s);
    else this.control.safeMode.delete(deviceId);
    this.log.putSafeMode(deviceId, s);
    const canceled = on ? this.cancelQueued(deviceId, 'safe mode') : 0;
    return this.audit({ event: 'safe-mode', deviceId, on, reason, by, at, canceled });
  }

  /** Stops timers and closes the log. Commands stay as they are on disk and resume on the next start. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    for (const t of this.pumpTimers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
    this.pumpTimers.clear();
    this.log.close();
  }

  // ---- lifecycle ----

  private restore(saved: Map<string, CommandRecord>): void {
    const now = this.clock.now();
    const queued: CommandRecord[] = [];
    for (const record of saved.values()) {
      this.commands.set(record.id, record);
      if (isFinal(record.state)) {
        this.finished.set(record.id, record.history[record.history.length - 1]?.at ?? record.createdAt);
      } else if (record.state === 'QUEUED') {
        queued.push(record);
      } else {
        // SENT or DELIVERED when the process stopped: the answer may have been lost with it.
        this.inFlight++;
        const deadline = (record.sentAt ?? now) + record.timeoutMs;
        if (now < record.expiresAt && record.attempts < 2) {
          // Devices reconnect after a restart; give them one timeout to come back before giving up.
          this.resendPending.add(record.id);
          this.armTimeout(
            record,
            Math.max(deadline, now + record.timeoutMs) - now,
            'no answer (sent before a restart)',
          );
        } else {
          this.armTimeout(record, deadline - now, 'no answer (sent before a restart)');
        }
      }
    }
    queued.sort((a, b) => a.createdAt - b.createdAt);
    for (const record of queued) {
      this.enqueue(record);
    }
    this.pruneFinished(false);
    this.log.compact(this.commands.values(), this.control);
    for (const deviceId of [...this.queues.keys()]) this.pump(deviceId);
    for (const id of [...this.resendPending]) {
      const record = this.commands.get(id);
      if (record && this.opts.link.isSubscribed(record.deviceId)) this.resend(record);
    }
  }

  private enqueue(record: CommandRecord): void {
    let queue = this.queues.get(record.deviceId);
    if (!queue) this.queues.set(record.deviceId, (queue = []));
    queue.push(record);
    this.queued++;
    const ms = record.expiresAt - this.clock.now();
    if (ms <= 0) {
      this.finish(record, 'EXPIRED', { reason: 'ttl passed before it could be sent' });
      return;
    }
    this.timers.set(
      record.id,
      this.clock.setTimeout(
        () => this.finish(record, 'EXPIRED', { reason: 'ttl passed before it could be sent' }),
        ms,
      ),
    );
  }

  private deviceReady(deviceId: string): void {
    this.pump(deviceId);
    if (this.resendPending.size === 0) return;
    for (const id of [...this.resendPending]) {
      const record = this.commands.get(id);
      if (record?.deviceId === deviceId) this.resend(record);
    }
  }

  /** Sends the device's queued commands in order while it is online and within its rate. */
  private pump(deviceId: string): void {
    if (this.closed || this.pumpTimers.has(deviceId)) return;
    const queue = this.queues.get(deviceId);
    if (!queue || queue.length === 0) return;
    if (!this.opts.link.isSubscribed(deviceId)) return;
    while (queue.length > 0 && this.rate.take(deviceId)) this.send(queue[0]); // send() dequeues
    if (queue.length > 0) {
      const wait = this.rate.waitMs(deviceId);
      this.pumpTimers.set(
        deviceId,
        this.clock.setTimeout(() => {
          this.pumpTimers.delete(deviceId);
          this.pump(deviceId);
        }, wait),
      );
    }
  }

  private send(record: CommandRecord): void {
    this.dequeue(record);
    this.clearTimer(record.id);
    const now = this.clock.now();
    if (now >= record.expiresAt) {
      // never sent after expiry
      this.finish(record, 'EXPIRED', { reason: 'ttl passed before it could be sent' });
      return;
    }
    record.sentAt = now;
    record.attempts++;
    this.inFlight++;
    this.changed(record, transition(record, 'SENT', now));
    this.armTimeout(record, record.timeoutMs, 'no final ack within the timeout');
    this.publish(record);
  }

  /** The one re-send of a command that was in flight when the process stopped; the device dedupes by id. */
  private resend(record: CommandRecord): void {
    this.resendPending.delete(record.id);
    if (isFinal(record.state)) return;
    const now = this.clock.now();
    // Never sent after expiry, nor while a switch is on: it is then resolved by its timeout.
    if (now >= record.expiresAt || this.control.killSwitch.on || this.control.safeMode.has(record.deviceId))
      return;
    record.sentAt = now;
    record.attempts++;
    this.changed(record, transition(record, 'SENT', now, 're-sent after a restart'));
    this.armTimeout(record, record.timeoutMs, 'no final ack within the timeout');
    this.publish(record);
  }

  private publish(record: CommandRecord): void {
    const payload: CommandPayload = {
      id: record.id,
      name: record.name,
      params: record.params,
      expiresAt: record.expiresAt,
    };
    const opts: CommandPublishOptions = { qos: 1, correlationId: record.id, expiresAt: record.expiresAt };
    this.opts.link
      .publishToDevice(record.deviceId, 'commands', JSON.stringify(payload), opts)
      .catch((err: unknown) => {
        this.emit(
          'error',
          new Error(`publishing command ${record.id} to ${record.deviceId} failed: ${String(err)}`),
        );
      });
  }

  private armTimeout(record: CommandRecord, ms: number, reason: string): void {
    this.clearTimer(record.id);
    this.timers.set(
      record.id,
      this.clock.setTimeout(() => this.finish(record, 'TIMED_OUT', { reason }), Math.max(ms, 0)),
    );
  }

  private handleDelivered(deviceId: string, _topic: string, payload: Buffer): void {
    let id: unknown;
    try {
      id = (JSON.parse(payload.toString()) as { id?: unknown }).id;
    } catch {
      return;
    }
    const record = typeof id === 'string' ? this.commands.get(id) : undefined;
    if (record?.state === 'SENT' && record.deviceId === deviceId)
      this.changed(record, transition(record, 'DELIVERED', this.clock.now()));
  }

  private handleAck(deviceId: string, payload: Buffer): void {
    let ack: { id?: unknown; status?: unknown; result?: unknown; error?: unknown } | null;
    try {
      ack = JSON.parse(payload.toString()) as typeof ack;
    } catch {
      return this.ignore(deviceId, undefined, 'malformed');
    }
    // `null` is valid JSON: an ack of `null` is as malformed as one without an id.
    const { id, status, result, error } = ack ?? {};
    if (
      typeof id !== 'string' ||
      (status !== 'accepted' && status !== 'succeeded' && status !== 'failed' && status !== 'rejected')
    )
      return this.ignore(deviceId, typeof id === 'string' ? id : undefined, 'malformed');
    const record = this.commands.get(id);
    if (!record) return this.ignore(deviceId, id, 'unknown');
    // Only the device the command was sent to may answer it: the broker's ACL ties the topic to the identity.
    if (record.deviceId !== deviceId) return this.ignore(deviceId, id, 'wrong_device');
    if (record.state === 'QUEUED') return this.ignore(deviceId, id, 'not_sent');
    if (isFinal(record.state))
      return this.ignore(
        deviceId,
        id,
        status !== 'accepted' && ACK_FINAL[status] === record.state ? 'duplicate' : 'late',
      );
    if (status === 'accepted') {
      if (record.state === 'DELIVERED') return this.ignore(deviceId, id, 'duplicate');
      this.changed(record, transition(record, 'DELIVERED', this.clock.now()));
      return;
    }
    this.finish(record, ACK_FINAL[status], {
      result,
      error: typeof error === 'string' ? error.slice(0, 1000) : undefined,
    });
  }

  private ignore(deviceId: string, id: string | undefined, reason: IgnoredAckReason): void {
    ignoredAcksTotal.labels(reason).inc();
    this.emit('ignoredAck', { deviceId, id, reason });
  }

  private cancelQueued(deviceId: string, reason: string): number {
    const queue = this.queues.get(deviceId);
    if (!queue) return 0;
    const n = queue.length;
    for (const record of [...queue]) this.finish(record, 'CANCELED', { reason });
    return n;
  }

  private finish(
    record: CommandRecord,
    state: CommandState,
    extra: { reason?: string; result?: unknown; error?: string },
  ): void {
    if (isFinal(record.state)) return;
    const wasQueued = record.state === 'QUEUED';
    if (wasQueued) this.dequeue(record);
    else this.inFlight--;
    this.clearTimer(record.id);
    this.resendPending.delete(record.id);
    if (extra.result !== undefined) record.result = extra.result;
    if (extra.error !== undefined) record.error = extra.error;
    const step = transition(record, state, this.clock.now(), extra.reason);
    this.finished.set(record.id, step.at);
    this.changed(record, step);
    this.emit('final', record);
    this.pruneFinished(false);
  }

  private dequeue(record: CommandRecord): void {
    const queue = this.queues.get(record.deviceId);
    if (!queue) return;
    const i = queue[0] === record ? 0 : queue.indexOf(record);
    if (i < 0) return;
    queue.splice(i, 1);
    this.queued--;
    if (queue.length === 0) this.queues.delete(record.deviceId);
  }

  private clearTimer(id: string): void {
    const t = this.timers.get(id);
    if (t !== undefined) {
      this.clock.clearTimeout(t);
      this.timers.delete(id);
    }
  }

  private changed(record: CommandRecord, step: Transition): void {
    transitionsTotal.labels(step.state).inc();
    try {
      this.log.putCommand(record);
      // A command writes ~4 lines in its life; compact once most lines belong to forgotten commands.
      if (this.log.lineCount > 10_000 && this.log.lineCount > 8 * this.commands.size)
        this.log.compact(this.commands.values(), this.control);
    } catch (err) {
      this.emit('error', new Error(`persisting command ${record.id} failed: ${(err as Error).message}`));
    }
    this.emit('transition', record, step);
  }

  /** Forgets finished commands past their retention (or the oldest, when `force` and at capacity). */
  private pruneFinished(force: boolean): void {
    const maxAge = this.opts.retainFinishedMs ?? 24 * 3600_000;
    const maxCount = this.opts.maxFinished ?? 10_000;
    const oldest = this.clock.now() - maxAge;
    for (const [id, at] of this.finished) {
      if (at >= oldest && this.finished.size <= maxCount && !force) break;
      this.finished.delete(id);
      this.commands.delete(id);
      force = false;
    }
  }

  private audit(e: AuditEvent): AuditEvent {
    const event = Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) as AuditEvent;
    this.emit('audit', event);
    return event;
  }
}
