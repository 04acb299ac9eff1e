/**
 * Moves line protocol from the durable spool to InfluxDB. A batch is acknowledged in the spool only after
 * InfluxDB stored it (or after its bad lines were isolated and dead-lettered), so a crash at any point
 * re-sends at most the unacknowledged batch; timestamps are fixed in the lines, so a re-send overwrites the
 * same points (idempotent) instead of duplicating them.
 */
import { EventEmitter } from 'node:events';
import { appendFile } from 'node:fs/promises';
import { counter } from '../metrics';
import { rejection, type Rejection } from '../rejection';
import { influxErrorText, NetworkError, type HttpResult } from './connection';
import { Backoff, classifyStatus, parseRetryAfter, type BackoffOptions } from './retry';

/** The part of the spool the sender reads (the spool's own module implements it). */
export interface SpoolSource<P> {
  readBatch(maxRecords: number, maxBytes: number): Promise<{ records: Buffer[]; end: P } | null>;
  ack(end: P): Promise<void>;
  rewind(): void;
  stats(): { pendingRecords: number; pendingBytes: number };
}

/** Where batches go: `InfluxConnection.write`, given a signal that aborts an in-flight request on stop. */
export type WriteFn = (body: Buffer, signal: AbortSignal) => Promise<HttpResult>;

export type SenderState = 'idle' | 'sending' | 'retrying' | 'held' | 'stopped';

export interface SenderStatus {
  state: SenderState;
  /** The last problem in a few words, e.g. "InfluxDB unreachable" or "401 unauthorized". */
  lastError?: string;
  /** HTTP status of the last failed attempt, if there was an HTTP answer. */
  lastStatus?: number;
  written: number;
  rejected: number;
  retries: number;
  queued: number;
}

export interface SenderOptions {
  batchRecords?: number;
  batchBytes?: number;
  /** A partial batch waits at most this long for more points. */
  flushIntervalMs?: number;
  /** Wait between attempts while held by 401/403/404 (a person must fix something). */
  holdRetryMs?: number;
  backoff?: BackoffOptions;
  /** JSON lines `{ at, status, reason, line }` for every line InfluxDB refused. */
  deadLetterFile?: string;
  /** Injectable clock for tests: resolves after `ms` or when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const writtenTotal = counter('iotb_influx_written_total', 'Points InfluxDB confirmed as stored');
const retriesTotal = counter('iotb_influx_retries_total', 'Write attempts that will be retried, by reason', [
  'reason',
] as const);

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

const NEWLINE = Buffer.from('\n');

function joinLines(lines: Buffer[]): Buffer {
  const parts: Buffer[] = new Array<Buffer>(lines.length * 2 - 1);
  for (let i = 0; i < lines.length; i++) {
    if (i > 0) parts[2 * i - 1] = NEWLINE;
    parts[2 * i] = lines[i];
  }
  return Buffer.concat(parts);
}

/** A write attempt that failed and will be retried after `delayMs`. */
export interface SenderRetry {
  /** HTTP status, when InfluxDB answered. */
  status?: number;
  error: string;
  delayMs: number;
  attempt: number;
}

/** What an InfluxSender emits. */
export interface InfluxSenderEvents {
  /** A batch of this many points is stored in InfluxDB and acknowledged in the spool. */
  written: [points: number];
  /** InfluxDB refused a point (details: { line, status }); it went to the dead-letter file. */
  rejected: [rejection: Rejection];
  retry: [retry: SenderRetry];
  /** The sender's state or last problem changed. */
  state: [status: SenderStatus];
  /** The send loop stopped on an unexpected error. */
  error: [err: Error];
}

/** Moves batches from the spool to InfluxDB; events in `InfluxSenderEvents`. */
export class InfluxSender<P> extends EventEmitter<InfluxSenderEvents> {
  private readonly batchRecords: number;
  private batchBytes: number;
  private readonly flushIntervalMs: number;
  private readonly holdRetryMs: number;
  private readonly backoff: Backoff;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly stopController = new AbortController();
  /** Aborted to cut a wait short (new data, redeploy, "retry now"). */
  private wake = new AbortController();
  private loop: Promise<void> | undefined;
  private draining = false;
  private readonly status: SenderStatus = { state: 'idle', written: 0, rejected: 0, retries: 0, queued: 0 };

  constructor(
    private readonly spool: SpoolSource<P>,
    private readonly write: WriteFn,
    private readonly opts: SenderOptions = {},
  ) {
    super();
    this.batchRecords = opts.batchRecords ?? 5000;
    this.batchBytes = opts.batchBytes ?? 4 * 1024 * 1024;
    this.flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.holdRetryMs = opts.holdRetryMs ?? 10_000;
    this.backoff = new Backoff(opts.backoff);
    this.sleep = opts.sleep ?? defaultSleep;
  }

  start(): void {
    this.loop ??= this.run().catch((err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      this.setState('stopped', `sender stopped: ${error.message}`);
      this.emit('error', error);
    });
  }

  /** New points are in the spool: ends a wait for data once a full batch is there. */
  notify(): void {
    if (this.status.state !== 'idle') return;
    const st = this.spool.stats();
    if (st.pendingRecords >= this.batchRecords || st.pendingBytes >= this.batchBytes) this.kick();
  }

  /** Ends any wait now: for a batch, or a backoff (e.g. after the credentials were fixed). */
  kick(): void {
    this.wake.abort();
  }

  snapshot(): SenderStatus {
    this.status.queued = this.spool.stats().pendingRecords;
    return { ...this.status };
  }

  /**
   * Sends what is queued for at most `timeoutMs` (no linger), then stops; whatever is not confirmed by then
   * stays in the spool for the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.kick();
    if (this.loop && timeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.drained(),
        new Promise<void>((r) => {
          timer = setTimeout(r, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.stopController.abort();
    this.kick();
    await this.loop;
    this.setState('stopped');
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.spool.stats().pendingRecords === 0 || this.stopController.signal.aborted) {
          this.off('written', check);
          this.off('state', check);
          resolve();
        }
      };
      this.on('written', check);
      this.on('state', check);
      check();
    });
  }

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private async wait(ms: number): Promise<void> {
    if (this.wake.signal.aborted) this.wake = new AbortController();
    const signal = AbortSignal.any([this.wake.signal, this.stopController.signal]);
    await this.sleep(ms, signal);
    if (this.wake.signal.aborted) this.wake = new AbortController();
  }

  private async run(): Promise<void> {
    let lingerSince: number | undefined;
    while (!this.stopped) {
      const st = this.spool.stats();
      if (st.pendingRecords === 0) {
        lingerSince = undefined;
        this.setState('idle');
        if (this.draining) return;
        await this.wait(this.flushIntervalMs);
        continue;
      }
      if (!this.draining && st.pendingRecords < this.batchRecords && st.pendingBytes < this.batchBytes) {
        lingerSince ??= Date.now();
        const left = lingerSince + this.flushIntervalMs - Date.now();
        if (left > 0) {
          this.setState('idle');
          await this.wait(left);
          continue;
        }
      }
      lingerSince = undefined;
      const batch = await this.spool.readBatch(this.batchRecords, this.batchBytes);
      if (!batch || batch.records.length === 0) {
        // Counted but not readable yet (still being written): yield to I/O instead of spinning.
        await this.wait(Math.min(this.flushIntervalMs, 50));
        continue;
      }
      this.setState('sending');
      if (!(await this.deliver(batch.records))) {
        this.spool.rewind();
        return;
      }
      await this.spool.ack(batch.end);
      this.emit('written', batch.records.length);
    }
  }

  /** Stores `lines` or rejects the ones InfluxDB refuses; false when stopped before that was settled. */
  private async deliver(lines: Buffer[]): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      let res: HttpResult | undefined;
      let networkError = '';
      try {
        res = await this.write(joinLines(lines), this.stopController.signal);
      } catch (err) {
        if (!(err instanceof NetworkError) && !(err instanceof Error && err.name === 'AbortError')) throw err;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() can run during the await
        if (this.stopped) return false;
        networkError = `InfluxDB unreachable: ${err.message}`;
      }
      const outcome = res ? classifyStatus(res.status) : 'retry';
      if (outcome === 'ok') {
        this.backoff.reset();
        this.status.written += lines.length;
        this.status.lastError = undefined;
        this.status.lastStatus = undefined;
        writtenTotal.inc(lines.length);
        return true;
      }
      if (res && (outcome === 'bad' || outcome === 'tooLarge')) {
        if (lines.length === 1) {
          await this.reject(lines[0], res);
          return true;
        }
        if (outcome === 'tooLarge') this.batchBytes = Math.max(64 * 1024, this.batchBytes >> 1);
        const mid = lines.length >> 1;
        return (await this.deliver(lines.slice(0, mid))) && (await this.deliver(lines.slice(mid)));
      }
      const error = res ? `${res.status} ${influxErrorText(res)}` : networkError;
      const retryAfter = res ? parseRetryAfter(res.headers['retry-after'], Date.now()) : undefined;
      const delayMs =
        outcome === 'hold' ? Math.max(this.holdRetryMs, this.backoff.next()) : this.backoff.next(retryAfter);
      this.status.retries++;
      retriesTotal.labels(res ? String(res.status) : 'network').inc();
      this.setState(outcome === 'hold' ? 'held' : 'retrying', error, res?.status);
      this.emit('retry', { status: res?.status, error, delayMs, attempt: this.backoff.attempts });
      await this.wait(delayMs);
    }
  }

  private async reject(line: Buffer, res: HttpResult): Promise<void> {
    const reason = influxErrorText(res);
    const text = line.toString('utf8');
    if (this.opts.deadLetterFile)
      await appendFile(
        this.opts.deadLetterFile,
        `${JSON.stringify({ at: new Date().toISOString(), status: res.status, reason, line: text })}\n`,
        { mode: 0o600 },
      );
    this.status.rejected++;
    const r: Rejection = rejection('influx', 'WRITE_REJECTED', `InfluxDB refused the point: ${reason}`, {
      line: text,
      status: res.status,
    });
    this.emit('rejected', r);
  }

  private setState(state: SenderState, error?: string, status?: number): void {
    const changed = state !== this.status.state || (error !== undefined && error !== this.status.lastError);
    this.status.state = state;
    if (error !== undefined) {
      this.status.lastError = error;
      this.status.lastStatus = status;
    }
    if (changed) this.emit('state', this.snapshot());
  }
}
