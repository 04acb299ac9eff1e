import {
  closeSync,
  existsSync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file';
import { lockFile, unlockFile } from '../file-lock';
import { readJournal } from '../journal';
import type { Alarm } from './alarm';

/**
 * Where alarms survive restarts. `put` makes a lifecycle step durable before the step is announced, so a
 * crash after the announcement never announces it again and a crash before it loses nothing that was
 * announced. Counts and last values of an active alarm change on every matching reading: they reach disk
 * with the next `flush` (the alarm itself, its state and its start are already durable).
 */
export interface AlarmStore {
  load(): Alarm[];
  /** Makes the new state of these alarms durable, in one write. */
  put(alarms: readonly Alarm[]): void;
  flush(): void;
  close(): void;
}

export interface FileAlarmStoreOptions {
  /** Rewrite the snapshot after this many journal entries (and on flush and close). */
  compactEvery?: number;
  /** Closed alarms (cleared and acknowledged) kept for GET by id; InfluxDB keeps the full history. */
  keepClosed?: number;
}

/**
 * Alarms on local disk: a JSON snapshot (`file`, replaced atomically) plus an append-only journal
 * (`file.journal`, one alarm per line, fdatasync'd per put); the last line for an id wins. A torn last line
 * (kill -9 mid-append) is ignored: that step was never announced. One writer per file (lock file with the pid).
 */
export class FileAlarmStore implements AlarmStore {
  private readonly journalFile: string;
  private readonly compactEvery: number;
  private readonly keepClosed: number;
  private journalFd: number | undefined;
  private journalEntries = 0;
  /** The alarms as last put; the engine's own objects, so a flush writes their latest counts. */
  private readonly alarms = new Map<string, Alarm>();

  constructor(
    private readonly file: string,
    opts: FileAlarmStoreOptions = {},
  ) {
    this.journalFile = `${file}.journal`;
    this.compactEvery = opts.compactEvery ?? 1000;
    this.keepClosed = opts.keepClosed ?? 1000;
  }

  load(): Alarm[] {
    lockFile(this.file, 'alarm');
    try {
      if (existsSync(this.file)) {
        const onDisk = JSON.parse(readFileSync(this.file, 'utf8')) as { version?: number; alarms?: Alarm[] };
        if (onDisk.version !== 1 || !Array.isArray(onDisk.alarms))
          throw new Error(`unsupported alarm file version ${String(onDisk.version)}`);
        for (const a of onDisk.alarms) this.alarms.set(a.id, a);
      }
      if (existsSync(this.journalFile)) this.replayJournal();
      this.compact();
      return [...this.alarms.values()];
    } catch (err) {
      unlockFile(this.file);
      throw new Error(`cannot load alarms ${this.file}: ${(err as Error).message}`);
    }
  }

  put(alarms: readonly Alarm[]): void {
    if (this.journalFd === undefined) throw new Error('alarm store is closed');
    let lines = '';
    for (const a of alarms) {
      this.alarms.set(a.id, a);
      lines += `${JSON.stringify(a)}\n`;
    }
    writeSync(this.journalFd, lines);
    fdatasyncSync(this.journalFd);
    this.journalEntries += alarms.length;
    if (this.journalEntries >= this.compactEvery) this.compact();
  }

  flush(): void {
    if (this.journalFd !== undefined) this.compact();
  }

  close(): void {
    if (this.journalFd === undefined) return;
    try {
      this.compact();
    } finally {
      closeSync(this.journalFd);
      this.journalFd = undefined;
      unlockFile(this.file);
    }
  }

  private replayJournal(): void {
    for (const alarm of readJournal<Alarm>(this.journalFile)) this.alarms.set(alarm.id, alarm);
  }

  /** Drops the oldest closed alarms beyond keepClosed, writes the snapshot, then empties the journal. */
  private compact(): void {
    const closed = [...this.alarms.values()].filter((a) => a.state === 'CLEARED_ACK');
    if (closed.length > this.keepClosed) {
      closed.sort((a, b) => (a.clearTs ?? 0) - (b.clearTs ?? 0) || Number(a.id) - Number(b.id));
      for (const a of closed.slice(0, closed.length - this.keepClosed)) this.alarms.delete(a.id);
    }
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify({ version: 1, alarms: [...this.alarms.values()] }));
    if (this.journalFd === undefined) this.journalFd = openSync(this.journalFile, 'a', 0o600);
    ftruncateSync(this.journalFd);
    fdatasyncSync(this.journalFd);
    this.journalEntries = 0;
  }
}

/**
 * Open alarms kept in memory only (no user directory, or persistence off): they survive a change of the
 * rules (the engine is rebuilt over the same store), not a restart.
 */
export class MemoryAlarmStore implements AlarmStore {
  private readonly alarms = new Map<string, Alarm>();
  load(): Alarm[] {
    return [...this.alarms.values()];
  }
  put(alarms: readonly Alarm[]): void {
    for (const a of alarms) {
      if (a.state === 'CLEARED_ACK') this.alarms.delete(a.id);
      else this.alarms.set(a.id, a);
    }
  }
  flush(): void {}
  close(): void {}
}
