/**
 * The Spool class: group-committed appends under the fsync policy, reading and acknowledging batches, the full
 * and disk-full policies, and the periodic sync. The public entry is index.ts; see docs/storage-spool.md.
 */
import { EventEmitter } from 'node:events';
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  statfsSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '../atomic-file';
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
import { settings, volumeBytes, type Settings, type SpoolOptions } from './options';
import { recoverSegments, removeStaleFiles } from './recovery';
import {
  datasync,
  errnoOf,
  SCAN_CHUNK,
  segmentPath,
  unlinkSegment,
  writeAll,
  writeAllSync,
  writeSeal,
  type Segment,
} from './segment';
import {
  SpoolDiskFullError,
  SpoolFullError,
  type RecoveryReport,
  type SpoolBatch,
  type SpoolCondition,
  type SpoolEvents,
  type SpoolPosition,
  type SpoolStats,
} from './types';

const MiB = 1024 * 1024;
/** The write buffer is kept for reuse up to this size; a larger group gets a one-off buffer. */
const KEPT_WRITE_BUFFER = 8 * MiB;
/**
 * Groups up to this size are written in place (a page-cache write, tens of µs) instead of through the thread
 * pool: handing a write to the pool and back costs about four times the process CPU of the write itself (190
 * vs 47 µs for 30 KB, 2-core VM), paid once per group. Larger groups, and every fsync, go to the pool so the
 * event loop never waits on the disk for long.
 */
const WRITE_IN_PLACE_MAX = 256 * 1024;

interface PendingAppend {
  records: readonly Uint8Array[];
  bytes: number;
  resolve(): void;
  reject(err: Error): void;
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
    const found = await recoverSegments(dir, names, ack);
    this.writeFd = found.writeFd;
    for (const seg of found.segments) {
      this.segments.push(seg);
      this.totalBytes += seg.size;
    }
    this.ackPos = found.ackPos;
    this.readPos = this.ackPos;
    this.counters.corruptSkipped += found.corruptSkipped;
    this.counters.tornTailBytesTruncated += found.tornTailBytesTruncated;
    this.corruptBytes += found.corruptBytes;
    // Written now also when it does not exist yet: made while there is space, it is rewritten in place later.
    if (ack.offset !== this.ackPos.offset || ack.segment !== this.ackPos.segment || !this.ackFile.created)
      this.tryPersistAck();
    this.recovery = {
      ms: Math.round(performance.now() - started),
      segments: this.segments.length,
      scannedSegments: found.scannedSegments,
      pendingRecords: this.pendingRecords(),
      pendingBytes: this.pendingBytes(),
      corruptSkipped: this.counters.corruptSkipped,
      corruptBytes: this.corruptBytes,
      tornTailBytesTruncated: this.counters.tornTailBytesTruncated,
    };
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
    const file = segmentPath(this.opts.dir, id);
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
      (err: unknown) => {
        this.syncing = undefined;
        this.dirty = true;
        this.lastError = `fsync failed: ${(err as Error).message}`;
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
    // Set by the frame visitor below; typed wide so the loop condition is not narrowed to its first value.
    let stopped = false as boolean;
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

  private pendingBytes(): number {
    return this.totalBytes - this.ackPos.offset;
  }

  private pendingRecords(): number {
    return Math.max(0, this.current().endSeq - this.ackPos.seq);
  }
}
