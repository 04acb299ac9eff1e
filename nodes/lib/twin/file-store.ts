import {
  closeSync,
  existsSync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file';
import { systemClock, type Clock } from '../clock';
import { lockFile, unlockFile } from '../file-lock';
import { readJournal } from '../journal';
import type { Durability, StoredTwin, TwinStore } from './store';

export interface FileTwinStoreOptions {
  /** Longest time a `soon` change waits for its fsync (ms). Default 200. */
  flushMs?: number;
  /** Rewrite the snapshot once the journal is larger than this and than the snapshot. Default 4 MiB. */
  compactBytes?: number;
  clock?: Clock;
}

/** A journal line: the twin's full new content, or its removal. */
type JournalEntry = StoredTwin | { deviceId: string; removed: true };

interface SnapshotFile {
  version: 1;
  twins: StoredTwin[];
}

/**
 * Twins on local disk: a JSON snapshot (`file`, replaced atomically) plus an append-only journal
 * (`file.journal`, one twin per line). Each change is one small append — not a rewrite of a file holding
 * 10,000 twins — written before `put` returns, so killing the process loses nothing. The fsync that makes it
 * survive a power loss is immediate for `now` changes and grouped for `soon` ones (one fsync per `flushMs`
 * for any number of device reports). The snapshot is rewritten when the journal has grown larger than it,
 * which keeps the cost per change constant. A torn last journal line (power loss mid-append) is ignored.
 */
export class FileTwinStore implements TwinStore {
  private readonly journalFile: string;
  private readonly flushMs: number;
  private readonly compactBytes: number;
  private readonly clock: Clock;
  private readonly twins = new Map<string, StoredTwin>();
  private journalFd: number | undefined;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private flushTimer: unknown;
  private unsynced = false;

  constructor(
    private readonly file: string,
    opts: FileTwinStoreOptions = {},
  ) {
    this.journalFile = `${file}.journal`;
    this.flushMs = opts.flushMs ?? 200;
    this.compactBytes = opts.compactBytes ?? 4 * 1024 * 1024;
    this.clock = opts.clock ?? systemClock;
  }

  load(): StoredTwin[] {
    lockFile(this.file, 'twin');
    try {
      if (existsSync(this.file)) {
        const text = readFileSync(this.file, 'utf8');
        const onDisk = JSON.parse(text) as SnapshotFile | { version: unknown };
        if (onDisk.version !== 1 || !('twins' in onDisk) || !Array.isArray(onDisk.twins))
          throw new Error(`unsupported twin file version ${String(onDisk.version)}`);
        for (const t of onDisk.twins) this.twins.set(t.deviceId, t);
        this.snapshotBytes = Buffer.byteLength(text);
      }
      if (existsSync(this.journalFile) && statSync(this.journalFile).size > 0) {
        this.replayJournal();
        this.compact();
      } else if (!existsSync(this.file)) this.compact();
      else this.journalFd = openSync(this.journalFile, 'a', 0o600);
      return [...this.twins.values()];
    } catch (err) {
      unlockFile(this.file);
      throw new Error(`cannot load twins ${this.file}: ${(err as Error).message}`);
    }
  }

  put(twin: StoredTwin, durability: Durability): void {
    this.twins.set(twin.deviceId, twin);
    this.append(twin, durability);
  }

  remove(deviceId: string): void {
    if (!this.twins.delete(deviceId)) return;
    this.append({ deviceId, removed: true }, 'now');
  }

  flush(): void {
    if (this.flushTimer !== undefined) this.clock.clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.journalFd === undefined || !this.unsynced) return;
    fdatasyncSync(this.journalFd);
    this.unsynced = false;
  }

  close(): void {
    if (this.journalFd === undefined) return;
    try {
      this.flush();
      this.compact();
    } finally {
      closeSync(this.journalFd);
      this.journalFd = undefined;
      unlockFile(this.file);
    }
  }

  private append(entry: JournalEntry, durability: Durability): void {
    if (this.journalFd === undefined) throw new Error('twin store is closed');
    const line = Buffer.from(`${JSON.stringify(entry)}\n`);
    writeSync(this.journalFd, line);
    this.journalBytes += line.length;
    this.unsynced = true;
    if (this.journalBytes > this.compactBytes && this.journalBytes > this.snapshotBytes) this.compact();
    else if (durability === 'now') this.flush();
    else this.flushTimer ??= this.clock.setTimeout(() => this.flush(), this.flushMs);
  }

  private replayJournal(): void {
    for (const entry of readJournal<JournalEntry>(this.journalFile)) {
      if ('removed' in entry) this.twins.delete(entry.deviceId);
      else this.twins.set(entry.deviceId, entry);
    }
  }

  /** Writes the snapshot atomically, then empties the journal it now contains. */
  private compact(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const text = JSON.stringify({ version: 1, twins: [...this.twins.values()] } satisfies SnapshotFile);
    writeFileAtomicSync(this.file, text);
    this.snapshotBytes = Buffer.byteLength(text);
    this.journalFd ??= openSync(this.journalFile, 'a', 0o600);
    ftruncateSync(this.journalFd);
    fdatasyncSync(this.journalFd);
    this.journalBytes = 0;
    this.unsynced = false;
    if (this.flushTimer !== undefined) this.clock.clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }
}
