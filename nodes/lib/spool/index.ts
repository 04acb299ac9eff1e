/**
 * A durable on-disk spool: an append-only log of records (e.g. line-protocol points) that a sender reads,
 * delivers and acknowledges. See docs/storage-spool.md for the format, the fsync policies and what each can
 * lose on power failure.
 */
import { EventEmitter } from 'node:events';
import {
  closeSync,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statfsSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomicSync } from '../atomic-file';
import { processAlive } from '../process-alive';
import { AckFile, type AckPosition } from './ack-file';
import {
  encodeFrames,
  HEADER_BYTES,
  MAX_RECORD_BYTES,
  requireCrc32,
  STOP,
  TAKE,
  TAKE_AND_STOP,
  walkFrames,
  type FrameVisitor,
} from './frame';
import { acquireLock, releaseLock } from './lock';

export { SpoolLockedError } from './lock';

export type FsyncPolicy = 'always' | 'interval' | 'never';
export type WhenFull = 'refuse' | 'drop-oldest';

export interface SpoolOptions {
  /** Created if missing; holds the segments, the ack position and LOCK. */
  dir: string;
  /**
   * Size at which a new segment file is started; space is freed a whole segment at a time. Default: a sixteenth
   * of maxBytes or of the volume the spool is on, whichever is smaller, between 64 KiB and 64 MiB. At most a
   * quarter of maxBytes.
   */
  segmentBytes?: number;
  /** Bound on unacknowledged data on disk (frames included). Default 1 GiB. */
  maxBytes?: number;
  /** Default 'interval'. */
  fsync?: FsyncPolicy;
  /** Default 1000. */
  fsyncIntervalMs?: number;
  /** Default 'refuse'. */
  whenFull?: WhenFull;
}

export interface SpoolStats {
  pendingRecords: number;
  pendingBytes: number;
  segments: number;
  /** Counters since this spool was opened. */
  appendedTotal: number;
  ackedTotal: number;
  corruptSkipped: number;
  tornTailBytesTruncated: number;
  droppedOldest: number;
  refusedFull: number;
  /** Appends are refused because maxBytes is reached (until an append succeeds or a delivery frees room). */
  full: boolean;
  /** The last append failed with ENOSPC/EDQUOT (until an append succeeds). */
  diskFull: boolean;
  /** The last failure, e.g. 'ENOSPC: disk full' while appends are stopped; cleared when appends work again. */
  lastError?: string;
}

/** Whether a spool can take more data, and how much room is left on its volume (for health reports). */
export interface SpoolCondition {
  pendingBytes: number;
  maxBytes: number;
  /** Appends are refused: maxBytes is reached. */
  full: boolean;
  /** The last append failed for lack of space on the volume. */
  diskFull: boolean;
  /** statfs of the volume (free as available to this process's user); absent where statfs fails. */
  freeBytes?: number;
  sizeBytes?: number;
  /** Free space below this counts as low: room for less than two more segments. */
  lowBytes: number;
}

/**
 * A place in the spool: the segment, the byte offset in it, and the record sequence number (counted from the
 * ack position when the spool was opened). Positions are only meaningful to the Spool instance that made them.
 */
export interface SpoolPosition {
  readonly segment: number;
  readonly offset: number;
  readonly seq: number;
}

export interface SpoolBatch {
  records: Buffer[];
  /** Position after the last record: pass it to ack() once the records are delivered. */
  end: SpoolPosition;
  /** Sum of the records' lengths. */
  bytes: number;
}

/** What open() found and repaired. */
export interface RecoveryReport {
  ms: number;
  segments: number;
  /** Segments read through at open (the first and the last; others only without a valid seal). */
  scannedSegments: number;
  pendingRecords: number;
  pendingBytes: number;
  corruptSkipped: number;
  corruptBytes: number;
  tornTailBytesTruncated: number;
}

export interface CorruptEvent {
  file: string;
  offset: number;
  bytes: number;
}

export interface FullEvent {
  policy: WhenFull;
  /** Records refused (policy 'refuse') or dropped (policy 'drop-oldest'). */
  records: number;
}

export interface SpoolEvents {
  /** Records written (and, with fsync 'always', synced). */
  appended: [records: number];
  /** Spool full: an append was refused, or oldest records were dropped. */
  full: [event: FullEvent];
  /** The disk is full: appends stop (existing data is intact) until a write succeeds again. */
  diskFull: [error: SpoolDiskFullError];
  /** Appends work again after a disk-full period. */
  recovered: [];
  /** Damaged bytes were skipped while reading. */
  corrupt: [event: CorruptEvent];
}

export class SpoolFullError extends Error {
  readonly code = 'SPOOL_FULL';
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFullError';
  }
}

export class SpoolDiskFullError extends Error {
  readonly code = 'ENOSPC';
  constructor(message: string) {
    super(message);
    this.name = 'SpoolDiskFullError';
  }
}

const MiB = 1024 * 1024;
const SEGMENT_FILE = /^(\d{12})\.seg$/;
/** Temp files of an interrupted atomic write (ack position, seal); only the lock holder writes them. */
const STALE_TMP = /^(?:ack\.json|ack\.pos|\d{12}\.seg\.sealed)\.\d+\.tmp$/;
/** Left by a process that crashed while taking the lock; removed only when that process is gone. */
const STALE_LOCK_TMP = /^LOCK\.(?:stale\.)?(\d+)(?:\.tmp)?$/;
/** Written when a segment is finished: its size and record count, so open() need not scan it. */
const SEAL_FILE = /^(\d{12})\.seg\.sealed$/;
const SCAN_CHUNK = 4 * MiB;
/** The write buffer is kept for reuse up to this size; a larger group gets a one-off buffer. */
const KEPT_WRITE_BUFFER = 8 * MiB;
/**
 * Groups up to this size are written in place (a page-cache write, tens of µs) instead of through the thread
 * pool: handing a write to the pool and back costs about four times the process CPU of the write itself (190
 * vs 47 µs for 30 KB, 2-core VM), paid once per group. Larger groups, and every fsync, go to the pool so the
 * event loop never waits on the disk for long.
 */
const WRITE_IN_PLACE_MAX = 256 * 1024;

interface Segment {
  id: number;
  file: string;
  /** Bytes of intact data (for the segment being written: the offset of the next frame). */
  size: number;
  /** Sequence number after the segment's last record. */
  endSeq: number;
  /** Intact frames in the whole file, when known (a segment scanned from its start or written here). */
  records: number | undefined;
  /** Damaged regions already counted: start offset -> end offset. */
  damaged: Map<number, number>;
}

interface PendingAppend {
  records: readonly Uint8Array[];
  bytes: number;
  resolve(): void;
  reject(err: Error): void;
}

interface Settings {
  dir: string;
  segmentBytes: number;
  maxBytes: number;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  whenFull: WhenFull;
}

const DERIVED_SEGMENT_MIN = 64 * 1024;
const DERIVED_SEGMENT_MAX = 64 * MiB;

/** Size of the filesystem holding `dir`, or undefined where statfs is not available. */
function volumeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.blocks * s.bsize;
  } catch {
    return undefined;
  }
}

function settings(opts: SpoolOptions, volume: number | undefined): Settings {
  if (!opts || typeof opts.dir !== 'string' || opts.dir === '') throw new TypeError('spool: dir is required');
  const fsync = opts.fsync ?? 'interval';
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never')
    throw new TypeError(`spool: fsync must be 'always', 'interval' or 'never' (got ${String(fsync)})`);
  const whenFull = opts.whenFull ?? 'refuse';
  if (whenFull !== 'refuse' && whenFull !== 'drop-oldest')
    throw new TypeError(`spool: whenFull must be 'refuse' or 'drop-oldest' (got ${String(whenFull)})`);
  const atLeast = (name: string, v: number | undefined, def: number, min: number): number => {
    const n = v ?? def;
    if (!Number.isFinite(n) || n < min) throw new RangeError(`spool: ${name} must be a number >= ${min}`);
    return Math.floor(n);
  };
  const maxBytes = atLeast('maxBytes', opts.maxBytes, 1024 * MiB, 64 * 1024);
  // Space is freed a whole segment at a time, so a segment is at most a quarter of the bound, and by default
  // small against the bound and the volume: on a volume of a few MiB delivered data is freed soon.
  const derived = Math.min(
    DERIVED_SEGMENT_MAX,
    Math.max(DERIVED_SEGMENT_MIN, Math.min(maxBytes, volume ?? Infinity) / 16),
  );
  const segmentBytes = Math.min(atLeast('segmentBytes', opts.segmentBytes, derived, 4096), maxBytes / 4);
  return {
    dir: opts.dir,
    segmentBytes: Math.floor(segmentBytes),
    maxBytes,
    fsync,
    fsyncIntervalMs: atLeast('fsyncIntervalMs', opts.fsyncIntervalMs, 1000, 1),
    whenFull,
  };
}

function compare(a: SpoolPosition, b: SpoolPosition): number {
  return a.segment - b.segment || a.offset - b.offset;
}

function isPosition(p: unknown): p is SpoolPosition {
  const q = p as SpoolPosition | null;
  return (
    typeof q === 'object' &&
    q !== null &&
    Number.isSafeInteger(q.segment) &&
    Number.isSafeInteger(q.offset) &&
    Number.isSafeInteger(q.seq)
  );
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function segmentName(id: number): string {
  return `${String(id).padStart(12, '0')}.seg`;
}

function sealFile(seg: Segment): string {
  return `${seg.file}.sealed`;
}

/** The record count from a segment's seal, if the seal matches the file. */
function readSeal(seg: Segment): number | undefined {
  try {
    const v = JSON.parse(readFileSync(sealFile(seg), 'utf8')) as { size?: unknown; records?: unknown };
    if (v.size === seg.size && Number.isSafeInteger(v.records)) return v.records as number;
  } catch {
    // missing or unreadable: the segment is scanned instead
  }
  return undefined;
}

function writeSeal(seg: Segment): void {
  if (seg.records === undefined) return;
  try {
    writeFileAtomicSync(sealFile(seg), JSON.stringify({ size: seg.size, records: seg.records }));
  } catch {
    // Without a seal the next open scans this segment; nothing else depends on it.
  }
}

function unlinkSegment(seg: Segment): void {
  for (const file of [seg.file, sealFile(seg)]) {
    try {
      unlinkSync(file);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
}

/** Removes temp files that a crashed process left behind (the caller holds the lock). */
function removeStaleFiles(dir: string, names: string[]): void {
  for (const name of names) {
    const lockPid = STALE_LOCK_TMP.exec(name)?.[1];
    const stale = STALE_TMP.test(name) || (lockPid !== undefined && !processAlive(Number(lockPid)));
    if (!stale) continue;
    try {
      unlinkSync(join(dir, name));
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
}

function writeAll(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) return resolve();
      write(fd, buf, done, length - done, position + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}

function writeAllSync(fd: number, buf: Buffer, length: number, position: number): void {
  for (let done = 0; done < length;) done += writeSync(fd, buf, done, length - done, position + done);
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export class Spool extends EventEmitter<SpoolEvents> {
  /** Segments from the one holding the ack position to the one being written (the last). */
  private readonly segments: Segment[] = [];
  private writeFd = -1;
  private ackPos: SpoolPosition = { segment: 0, offset: 0, seq: 0 };
  private readPos: SpoolPosition = this.ackPos;
  /** The ack position in memory is ahead of the one on disk. */
  private ackDirty = false;
  /** Sum of the segments' sizes. */
  private totalBytes = 0;
  private writeBuf = Buffer.allocUnsafe(256 * 1024);
  private queue: PendingAppend[] = [];
  private drainScheduled = false;
  /** Serializes writes, rolls and syncs. */
  private writer: Promise<void> = Promise.resolve();
  /** Serializes reads; only the reader opens and closes readFd. */
  private reader: Promise<unknown> = Promise.resolve();
  private readFd: { id: number; fd: number } | undefined;
  /** Written since the last fsync (policy 'interval'). */
  private dirty = false;
  private syncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private diskFull = false;
  private refusing = false;
  private reclaiming = false;
  private readonly ackFile: AckFile;
  private lastError: string | undefined;
  private readonly counters = {
    appendedTotal: 0,
    ackedTotal: 0,
    corruptSkipped: 0,
    tornTailBytesTruncated: 0,
    droppedOldest: 0,
    refusedFull: 0,
  };
  private corruptBytes = 0;
  /** What open() found and repaired. */
  recovery: RecoveryReport = {
    ms: 0,
    segments: 0,
    scannedSegments: 0,
    pendingRecords: 0,
    pendingBytes: 0,
    corruptSkipped: 0,
    corruptBytes: 0,
    tornTailBytesTruncated: 0,
  };

  private constructor(
    private readonly opts: Settings,
    private readonly lockFile: string,
  ) {
    super();
    this.ackFile = new AckFile(opts.dir);
  }

  /** Takes the lock (fails with SpoolLockedError if another process holds it) and recovers after a crash. */
  static async open(options: SpoolOptions): Promise<Spool> {
    requireCrc32();
    settings(options, undefined); // bad options fail before anything is created
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const opts = settings(options, volumeBytes(options.dir));
    // The real path: two spellings of one dir in this process must meet at the same lock.
    const lockFile = join(realpathSync(opts.dir), 'LOCK');
    acquireLock(lockFile, `spool ${opts.dir}`);
    const spool = new Spool(opts, lockFile);
    try {
      await spool.recover();
    } catch (err) {
      if (spool.writeFd >= 0) closeSync(spool.writeFd);
      spool.ackFile.close();
      releaseLock(lockFile);
      throw err;
    }
    if (opts.fsync !== 'always') {
      spool.timer = setInterval(() => spool.tick(), opts.fsyncIntervalMs);
      spool.timer.unref();
    }
    return spool;
  }

  /**
   * Appends records as one write. Resolves when they are written per the fsync policy ('always': synced to
   * disk). Rejects with SpoolFullError (nothing of this call stored) or SpoolDiskFullError (nothing stored,
   * the spool is unharmed). Concurrent calls are written together (group commit).
   */
  append(records: readonly Uint8Array[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`spool ${this.opts.dir} is closed`));
    if (!Array.isArray(records))
      return Promise.reject(new TypeError('spool: append takes an array of Buffers'));
    let bytes = 0;
    for (const r of records) {
      if (!(r instanceof Uint8Array)) return Promise.reject(new TypeError('spool: records must be Buffers'));
      if (r.length > MAX_RECORD_BYTES)
        return Promise.reject(
          new RangeError(`spool: a record of ${r.length} bytes is over the limit of ${MAX_RECORD_BYTES}`),
        );
      bytes += HEADER_BYTES + r.length;
    }
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, bytes, resolve, reject });
      if (!this.drainScheduled) {
        this.drainScheduled = true;
        void this.exclusive(() => this.drain());
      }
    });
  }

  /** The next unacknowledged records after the last read (or the ack position); null when there are none. */
  readBatch(maxRecords: number, maxBytes: number): Promise<SpoolBatch | null> {
    const run = this.reader.then(() => this.read(maxRecords, maxBytes));
    this.reader = run.catch(() => undefined);
    return run;
  }

  /**
   * Everything up to `end` is delivered: deletes the segments that are now fully acknowledged (first, so a
   * full disk gets space back) and persists the ack position (in place, see ack-file.ts) — before resolving
   * with fsync 'always', otherwise within fsyncIntervalMs (each write costs an fdatasync; a sender acks often).
   * After a crash before that, the records after the persisted position are read again (at-least-once).
   * If persisting fails the position still holds in memory and is written again later.
   */
  ack(end: SpoolPosition): Promise<void> {
    return new Promise((resolve) => {
      this.ackSync(end);
      resolve();
    });
  }

  /** The next readBatch starts again at the ack position (after a failed send). */
  rewind(): void {
    this.readPos = this.ackPos;
  }

  stats(): SpoolStats {
    const s: SpoolStats = {
      pendingRecords: this.pendingRecords(),
      pendingBytes: this.pendingBytes(),
      segments: this.segments.length,
      ...this.counters,
      full: this.refusing,
      diskFull: this.diskFull,
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /** Free and total bytes of the filesystem holding the spool (statfs; free as available to this user). */
  volume(): { freeBytes: number; sizeBytes: number } | undefined {
    try {
      const s = statfsSync(this.opts.dir);
      return { freeBytes: s.bavail * s.bsize, sizeBytes: s.blocks * s.bsize };
    } catch {
      return undefined;
    }
  }

  condition(): SpoolCondition {
    const volume = this.volume();
    const c: SpoolCondition = {
      pendingBytes: this.pendingBytes(),
      maxBytes: this.opts.maxBytes,
      full: this.refusing,
      diskFull: this.diskFull,
      lowBytes: 2 * this.opts.segmentBytes,
    };
    if (volume) {
      c.freeBytes = volume.freeBytes;
      c.sizeBytes = volume.sizeBytes;
    }
    return c;
  }

  /** The segment size in effect (given, or derived from maxBytes and the volume). */
  get segmentBytes(): number {
    return this.opts.segmentBytes;
  }

  /** Writes what is queued, syncs it, persists the ack position and releases the lock. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    try {
      await this.exclusive(async () => {
        await this.syncing;
        if (this.writeFd >= 0) await datasync(this.writeFd);
      });
      await this.reader;
      if (this.ackDirty) this.persistAck();
    } finally {
      if (this.readFd) closeSync(this.readFd.fd);
      this.readFd = undefined;
      if (this.writeFd >= 0) closeSync(this.writeFd);
      this.writeFd = -1;
      this.ackFile.close();
      releaseLock(this.lockFile);
    }
  }

  // ---- recovery ----

  private async recover(): Promise<void> {
    const started = performance.now();
    const { dir } = this.opts;
    const names = readdirSync(dir);
    removeStaleFiles(dir, names);
    const ack = this.readAckFile();
    const ids = names
      .map((n) => SEGMENT_FILE.exec(n)?.[1])
      .filter((id): id is string => id !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    // Segments before the ack position were fully acknowledged; a crash came before their deletion.
    while (ids.length > 0 && ids[0] < ack.segment) unlinkSync(this.segmentFile(ids.shift()!));
    if (ids.length === 0) {
      const id = Math.max(ack.segment, 1);
      closeSync(openSync(this.segmentFile(id), 'wx', 0o600));
      fsyncDir(dir);
      ids.push(id);
    }
    for (const name of names) {
      const sealed = SEAL_FILE.exec(name)?.[1];
      if (sealed !== undefined && !ids.includes(Number(sealed))) unlinkSync(join(dir, name));
    }
    let seq = 0;
    let scanned = 0;
    for (const [i, id] of ids.entries()) {
      const first = i === 0;
      const last = i === ids.length - 1;
      const file = this.segmentFile(id);
      const fd = openSync(file, last ? 'r+' : 'r');
      try {
        const size = fstatSync(fd).size;
        const from = first && id === ack.segment ? Math.min(ack.offset, size) : 0;
        const seg: Segment = { id, file, size, endSeq: 0, records: undefined, damaged: new Map() };
        // A sealed segment is counted from its seal (the first one with the ack file's count of records
        // before the ack offset); the reader checks its frames anyway. The last one is always scanned.
        const sealed = last ? undefined : readSeal(seg);
        let records: number | undefined;
        if (sealed !== undefined && from === 0) records = sealed;
        else if (sealed !== undefined && ack.records !== undefined && ack.records <= sealed)
          records = sealed - ack.records;
        if (records === undefined) {
          records = await this.scan(fd, seg, from, last);
          scanned++;
        }
        seg.records = from === 0 ? records : sealed;
        seq += records;
        seg.endSeq = seq;
        if (first) this.ackPos = { segment: id, offset: from, seq: 0 };
        this.segments.push(seg);
        this.totalBytes += seg.size;
      } finally {
        if (last) this.writeFd = fd;
        else closeSync(fd);
      }
    }
    this.readPos = this.ackPos;
    // Written now also when it does not exist yet: made while there is space, it is rewritten in place later.
    if (ack.offset !== this.ackPos.offset || ack.segment !== this.ackPos.segment || !this.ackFile.created)
      this.tryPersistAck();
    this.recovery = {
      ms: Math.round(performance.now() - started),
      segments: this.segments.length,
      scannedSegments: scanned,
      pendingRecords: this.pendingRecords(),
      pendingBytes: this.pendingBytes(),
      corruptSkipped: this.counters.corruptSkipped,
      corruptBytes: this.corruptBytes,
      tornTailBytesTruncated: this.counters.tornTailBytesTruncated,
    };
  }

  /**
   * Counts the frames of `seg` from `from`. The last segment — the one a crash can have torn — is checked
   * frame by frame: its damaged regions are recorded, and damage with nothing intact after it (a write
   * interrupted by a crash) is cut off. Older segments are only counted by their headers; the reader checks
   * their CRCs (and reports damage) when it gets there, as for sealed segments.
   */
  private async scan(fd: number, seg: Segment, from: number, last: boolean): Promise<number> {
    const damaged: Array<[number, number]> = [];
    let records = 0;
    await walkFrames(
      fd,
      from,
      seg.size,
      { chunkBytes: SCAN_CHUNK, fresh: false, verify: last },
      {
        frame: () => {
          records++;
          return TAKE;
        },
        knownDamage: () => undefined,
        damaged: (a, b) => void damaged.push([a, b]),
      },
    );
    if (!last) return records;
    const tail = damaged.at(-1);
    if (tail !== undefined && tail[1] === seg.size) {
      damaged.pop();
      ftruncateSync(fd, tail[0]);
      fsyncSync(fd);
      this.counters.tornTailBytesTruncated += seg.size - tail[0];
      seg.size = tail[0];
    }
    for (const [a, b] of damaged) {
      seg.damaged.set(a, b);
      this.counters.corruptSkipped++;
      this.corruptBytes += b - a;
    }
    return records;
  }

  /** The persisted ack position; a missing or unreadable file means "from the first segment" (nothing lost). */
  private readAckFile(): AckPosition {
    const found = this.ackFile.read();
    if (found === undefined) return { segment: 0, offset: 0 };
    if ('pos' in found) return found.pos;
    this.lastError = `${found.unreadable}: reading from the first segment`;
    return { segment: 0, offset: 0 };
  }

  // ---- writing ----

  private exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.writer.then(fn);
    this.writer = run.catch(() => undefined);
    return run;
  }

  /** Writes everything queued so far as one group. */
  private async drain(): Promise<void> {
    this.drainScheduled = false;
    const group = this.queue;
    this.queue = [];
    const accepted: PendingAppend[] = [];
    let bytes = 0;
    let records = 0;
    let refusedAny = false;
    for (const req of group) {
      let refusal: Error | undefined;
      try {
        refusal = await this.makeRoom(req, bytes);
      } catch (err) {
        refusal = this.writeFailed(err); // rolling to a new segment failed
      }
      if (refusal) {
        refusedAny = true;
        req.reject(refusal);
        continue;
      }
      accepted.push(req);
      bytes += req.bytes;
      records += req.records.length;
    }
    if (accepted.length === 0) return;
    try {
      await this.writeGroup(accepted, bytes, records);
    } catch (err) {
      for (const req of accepted) req.reject(err as Error);
      return;
    }
    // Still full if part of this group did not fit.
    if (!refusedAny) this.refusing = false;
    for (const req of accepted) req.resolve();
    this.emit('appended', records);
  }

  /** Frees room for `req` (after `queued` bytes already accepted) per the full policy, or says why not. */
  private async makeRoom(req: PendingAppend, queued: number): Promise<SpoolFullError | undefined> {
    const { maxBytes, whenFull } = this.opts;
    while (this.pendingBytes() + queued + req.bytes > maxBytes) {
      if (whenFull === 'drop-oldest' && queued + req.bytes <= maxBytes) {
        if (this.segments.length > 1) {
          this.dropOldestSegment();
          continue;
        }
        if (this.pendingBytes() > 0) {
          await this.roll();
          continue;
        }
      }
      return this.refuse(req);
    }
    return undefined;
  }

  private refuse(req: PendingAppend): SpoolFullError {
    const n = req.records.length;
    this.counters.refusedFull += n;
    if (!this.refusing) {
      this.refusing = true;
      this.emit('full', { policy: 'refuse', records: n });
    }
    const { maxBytes, dir } = this.opts;
    const why =
      req.bytes > maxBytes
        ? `the batch (${req.bytes} bytes) is larger than the spool's maxBytes (${maxBytes})`
        : `${this.pendingBytes()} of ${maxBytes} bytes are waiting for delivery`;
    return new SpoolFullError(`spool full: ${n} records refused, ${why} (${dir})`);
  }

  private dropOldestSegment(): void {
    const seg = this.segments[0];
    const dropped = Math.max(0, seg.endSeq - this.ackPos.seq);
    this.removeSegment(seg);
    this.segments.shift();
    this.totalBytes -= seg.size;
    this.ackPos = { segment: this.segments[0].id, offset: 0, seq: seg.endSeq };
    this.counters.droppedOldest += dropped;
    this.tryPersistAck();
    this.emit('full', { policy: 'drop-oldest', records: dropped });
  }

  private async writeGroup(group: PendingAppend[], bytes: number, records: number): Promise<void> {
    if (this.current().size > 0 && this.current().size + bytes > this.opts.segmentBytes) {
      try {
        await this.roll();
      } catch (err) {
        throw this.writeFailed(err);
      }
    }
    let buf = this.writeBuf;
    if (bytes > buf.length) {
      buf = Buffer.allocUnsafe(bytes);
      if (bytes <= KEPT_WRITE_BUFFER) this.writeBuf = buf;
    }
    let o = 0;
    for (const req of group) o = encodeFrames(req.records, buf, o);
    const seg = this.current();
    try {
      if (bytes <= WRITE_IN_PLACE_MAX) writeAllSync(this.writeFd, buf, bytes, seg.size);
      else await writeAll(this.writeFd, buf, bytes, seg.size);
      if (this.opts.fsync === 'always') await datasync(this.writeFd);
    } catch (err) {
      // Cut off whatever part of the group reached the file, so no partial frame stays behind.
      try {
        ftruncateSync(this.writeFd, seg.size);
      } catch {
        // The next write goes to seg.size anyway and overwrites the remains; recovery truncates them otherwise.
      }
      throw this.writeFailed(err);
    }
    seg.size += bytes;
    seg.endSeq += records;
    if (seg.records !== undefined) seg.records += records;
    this.totalBytes += bytes;
    this.counters.appendedTotal += records;
    this.dirty = this.opts.fsync === 'interval';
    if (this.diskFull) {
      this.diskFull = false;
      this.lastError = undefined;
      this.emit('recovered');
    }
  }

  private writeFailed(err: unknown): Error {
    const code = errnoOf(err);
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      const e = new SpoolDiskFullError(
        `ENOSPC: disk full under ${this.opts.dir}; spool appends stop until space returns (stored data is intact)`,
      );
      this.lastError = 'ENOSPC: disk full';
      if (!this.diskFull) {
        this.diskFull = true;
        this.emit('diskFull', e);
      }
      this.reclaimCaughtUp();
      return e;
    }
    this.lastError = `${code ?? 'error'}: ${(err as Error).message}`;
    return err as Error;
  }

  /** Starts the next segment. The finished one is synced first unless the policy is 'never'. */
  private async roll(): Promise<void> {
    const prev = this.current();
    const id = prev.id + 1;
    const file = this.segmentFile(id);
    const fd = openSync(file, 'wx', 0o600);
    if (this.opts.fsync !== 'never') {
      try {
        await datasync(this.writeFd);
        fsyncDir(this.opts.dir);
      } catch (err) {
        closeSync(fd);
        unlinkSync(file);
        throw err;
      }
    }
    await this.syncing;
    closeSync(this.writeFd);
    this.writeFd = fd;
    this.dirty = false;
    writeSeal(prev);
    this.segments.push({ id, file, size: 0, endSeq: prev.endSeq, records: 0, damaged: new Map() });
  }

  /** The 'interval' fsync. It runs beside writes; a roll or close waits for it before closing the fd. */
  private syncIfDirty(): void {
    if (!this.dirty || this.writeFd < 0 || this.syncing) return;
    this.dirty = false;
    this.syncing = datasync(this.writeFd).then(
      () => {
        this.syncing = undefined;
      },
      (err: Error) => {
        this.syncing = undefined;
        this.dirty = true;
        this.lastError = `fsync failed: ${err.message}`;
      },
    );
  }

  // ---- reading and acknowledging ----

  private async read(maxRecords: number, maxBytes: number): Promise<SpoolBatch | null> {
    if (this.closed) throw new Error(`spool ${this.opts.dir} is closed`);
    if (!(maxRecords >= 1) || !(maxBytes >= 1)) throw new RangeError('spool: readBatch limits must be >= 1');
    const records: Buffer[] = [];
    let bytes = 0;
    let pos = compare(this.readPos, this.ackPos) < 0 ? this.ackPos : this.readPos;
    let seq = pos.seq;
    let stopped = false;
    // Read about what the batch needs (records keep their chunk alive); a short guess only costs another read.
    const pending = this.pendingRecords();
    const avgFrame = pending > 0 ? this.pendingBytes() / pending : 128;
    const chunk = Math.max(
      4096,
      Math.min(SCAN_CHUNK, maxBytes + HEADER_BYTES * maxRecords, Math.ceil(maxRecords * avgFrame * 1.25)),
    );
    while (!stopped && records.length < maxRecords) {
      if (compare(pos, this.ackPos) < 0) {
        pos = this.ackPos; // the oldest were dropped meanwhile
        seq = pos.seq;
      }
      const idx = this.segments.findIndex((s) => s.id === pos.segment);
      const seg = this.segments[idx];
      if (pos.offset >= seg.size) {
        if (idx === this.segments.length - 1) break;
        pos = { segment: this.segments[idx + 1].id, offset: 0, seq: pos.seq };
        continue;
      }
      const visitor: FrameVisitor = {
        frame: (buf, start, length) => {
          if (records.length > 0 && bytes + length > maxBytes) {
            stopped = true;
            return STOP;
          }
          records.push(buf.subarray(start, start + length));
          bytes += length;
          seq++;
          if (records.length >= maxRecords || bytes >= maxBytes) {
            stopped = true;
            return TAKE_AND_STOP;
          }
          return TAKE;
        },
        knownDamage: (offset) => seg.damaged.get(offset),
        damaged: (from, to) => {
          seg.damaged.set(from, to);
          this.counters.corruptSkipped++;
          this.corruptBytes += to - from;
          this.emit('corrupt', { file: seg.file, offset: from, bytes: to - from });
        },
      };
      const offset = await walkFrames(
        this.readerFd(seg),
        pos.offset,
        seg.size,
        { chunkBytes: chunk, fresh: true, verify: true },
        visitor,
      );
      // At a segment's end the count is re-aligned with it, past damage the reader found only now.
      if (offset === seg.size) seq = seg.endSeq;
      pos = { segment: seg.id, offset, seq };
    }
    this.readPos = pos;
    return records.length > 0 ? { records, end: pos, bytes } : null;
  }

  /** Deletes a segment's files; the reader's descriptor on it is closed too, or its space would stay in use. */
  private removeSegment(seg: Segment): void {
    unlinkSegment(seg);
    if (this.readFd?.id !== seg.id) return;
    this.reader = this.reader
      .then(() => {
        if (this.readFd?.id !== seg.id) return;
        closeSync(this.readFd.fd);
        this.readFd = undefined;
      })
      .catch(() => undefined);
  }

  private readerFd(seg: Segment): number {
    if (this.readFd?.id === seg.id) return this.readFd.fd;
    if (this.readFd) closeSync(this.readFd.fd);
    this.readFd = { id: seg.id, fd: openSync(seg.file, 'r') };
    return this.readFd.fd;
  }

  private ackSync(end: SpoolPosition): void {
    if (this.closed) throw new Error(`spool ${this.opts.dir} is closed`);
    if (!isPosition(end)) throw new TypeError('spool: ack takes a position from readBatch');
    if (compare(end, this.ackPos) <= 0) return; // already acknowledged, or dropped as oldest meanwhile
    if (compare(end, this.readPos) > 0)
      throw new RangeError('spool: cannot acknowledge records not yet read');
    this.advanceAck(this.releaseAcked(end));
    // If the disk refuses even this (a copy-on-write filesystem, or ack.pos not yet created), the position holds
    // in memory and the next ack or close writes it: a delivery must not fail for it.
    if (this.opts.fsync === 'always') this.tryPersistAck();
    if (this.diskFull) this.reclaimCaughtUp();
  }

  /**
   * Deletes the segments wholly before `end` (first, so a full disk gets space back before anything else) and
   * returns the position to persist.
   */
  private releaseAcked(end: SpoolPosition): SpoolPosition {
    let pos = end;
    while (this.segments.length > 1) {
      const first = this.segments[0];
      if (first.id === pos.segment && pos.offset >= first.size)
        pos = { segment: this.segments[1].id, offset: 0, seq: pos.seq };
      if (first.id >= pos.segment) break;
      this.removeSegment(first);
      this.segments.shift();
      this.totalBytes -= first.size;
    }
    // Only if segment files went missing behind our back: continue at the next one that exists.
    if (this.segments[0].id > pos.segment) pos = { segment: this.segments[0].id, offset: 0, seq: pos.seq };
    return pos;
  }

  private advanceAck(pos: SpoolPosition): void {
    this.counters.ackedTotal += pos.seq - this.ackPos.seq;
    this.ackPos = pos;
    if (compare(this.readPos, pos) < 0) this.readPos = pos;
    this.ackDirty = true;
    // Delivery made room under maxBytes: the next append is tried for real (and reported again if refused).
    this.refusing = false;
  }

  /**
   * On a full disk, once everything is delivered: starts a new segment so the one being written — all of it
   * delivered, however large — is deleted. Without this a spool whose data sits in the segment being written
   * would keep its space until that segment fills, which a full disk never lets happen.
   */
  private reclaimCaughtUp(): void {
    const caughtUp = (): boolean => {
      const cur = this.current();
      return cur.size > 0 && this.ackPos.segment === cur.id && this.ackPos.offset >= cur.size;
    };
    if (this.reclaiming || !caughtUp()) return;
    this.reclaiming = true;
    void this.exclusive(async () => {
      try {
        if (this.closed || !caughtUp()) return;
        await this.roll();
        this.advanceAck(this.releaseAcked(this.ackPos));
        this.tryPersistAck();
      } catch (err) {
        this.lastError = `could not start a new segment to free space: ${(err as Error).message}`;
      } finally {
        this.reclaiming = false;
      }
    });
  }

  private persistAck(): void {
    this.ackDirty = true;
    const { segment, offset } = this.ackPos;
    const records = this.recordsBeforeAck();
    this.ackFile.write(records === undefined ? { segment, offset } : { segment, offset, records });
    this.ackDirty = false;
  }

  /** Records in the first segment before the ack offset, when the segment's record count is known. */
  private recordsBeforeAck(): number | undefined {
    const first = this.segments[0];
    return first.records === undefined ? undefined : this.ackPos.seq - (first.endSeq - first.records);
  }

  /** Periodic work for the policies 'interval' and 'never': sync the segment ('interval'), persist the ack. */
  private tick(): void {
    if (this.opts.fsync === 'interval') this.syncIfDirty();
    if (this.ackDirty) this.tryPersistAck();
  }

  private tryPersistAck(): void {
    try {
      this.persistAck();
    } catch (err) {
      this.lastError = `could not persist the ack position: ${(err as Error).message}`;
    }
  }

  // ---- bookkeeping ----

  private current(): Segment {
    return this.segments[this.segments.length - 1];
  }

  private segmentFile(id: number): string {
    return join(this.opts.dir, segmentName(id));
  }

  private pendingBytes(): number {
    return this.totalBytes - this.ackPos.offset;
  }

  private pendingRecords(): number {
    return Math.max(0, this.current().endSeq - this.ackPos.seq);
  }
}
