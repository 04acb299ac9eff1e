import {
  closeSync,
  existsSync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { DeviceType } from '../device-contracts';
import { writeFileAtomicSync } from '../atomic-file';
import {
  emptySnapshot,
  type DeviceStore,
  type RegistryChange,
  type RegistrySnapshot,
  type StoredApiKey,
  type StoredDevice,
  type StoredProvisioning,
} from './store';

/** Files open in this process: a second writer on the same file would lose the first one's changes. */
const openFiles = new Set<string>();

export interface FileStoreOptions {
  /** Rewrite the snapshot after this many journal entries (and on open and close). */
  compactEvery?: number;
}

/**
 * The registry on local disk: a JSON snapshot (`file`, replaced atomically) plus an append-only journal
 * (`file.journal`, one JSON change per line, fdatasync'd per change). Appending one line keeps a change
 * cheap at 100k devices, where rewriting the whole snapshot per change would cost tens of milliseconds.
 * A torn last journal line (crash mid-append) is ignored on load: that change was never answered.
 * One writer: a lock file (`file.lock`, holding the pid) refuses a second process, a set refuses a
 * second store in this process.
 */
export class FileDeviceStore implements DeviceStore {
  private readonly journalFile: string;
  private readonly lockFile: string;
  private readonly compactEvery: number;
  private journalFd: number | undefined;
  private journalEntries = 0;
  private readonly devices = new Map<string, StoredDevice>();
  private readonly types = new Map<string, DeviceType>();
  private readonly apiKeys = new Map<string, StoredApiKey>();
  private readonly provisioning = new Map<string, StoredProvisioning>();

  constructor(
    private readonly file: string,
    opts: FileStoreOptions = {},
  ) {
    this.journalFile = `${file}.journal`;
    this.lockFile = `${file}.lock`;
    this.compactEvery = opts.compactEvery ?? 10_000;
  }

  load(): RegistrySnapshot {
    this.lock();
    try {
      if (existsSync(this.file)) {
        const snap = JSON.parse(readFileSync(this.file, 'utf8')) as RegistrySnapshot;
        if (snap.version !== 1) throw new Error(`unsupported registry file version ${String(snap.version)}`);
        for (const d of snap.devices) this.devices.set(d.id, d);
        for (const t of snap.types) this.types.set(t.name, t);
        for (const k of snap.apiKeys) this.apiKeys.set(k.id, k);
        for (const p of snap.provisioning ?? []) this.provisioning.set(p.type, p);
      }
      if (existsSync(this.journalFile)) this.replayJournal();
      this.compact();
      return this.snapshot();
    } catch (err) {
      this.unlock();
      throw new Error(`cannot load device registry ${this.file}: ${(err as Error).message}`);
    }
  }

  commit(change: RegistryChange): void {
    if (this.journalFd === undefined) throw new Error('device registry store is closed');
    this.apply(change);
    writeSync(this.journalFd, `${JSON.stringify(change)}\n`);
    fdatasyncSync(this.journalFd);
    if (++this.journalEntries >= this.compactEvery) this.compact();
  }

  close(): void {
    if (this.journalFd === undefined) return;
    try {
      this.compact();
    } finally {
      closeSync(this.journalFd);
      this.journalFd = undefined;
      this.unlock();
    }
  }

  private apply(change: RegistryChange): void {
    switch (change.op) {
      case 'putDevice':
        this.devices.set(change.device.id, change.device);
        break;
      case 'deleteDevice':
        this.devices.delete(change.id);
        break;
      case 'putType':
        this.types.set(change.type.name, change.type);
        break;
      case 'deleteType':
        this.types.delete(change.name);
        break;
      case 'putApiKey':
        this.apiKeys.set(change.key.id, change.key);
        break;
      case 'deleteApiKey':
        this.apiKeys.delete(change.id);
        break;
      case 'putProvisioning':
        this.provisioning.set(change.provisioning.type, change.provisioning);
        break;
      case 'deleteProvisioning':
        this.provisioning.delete(change.type);
        break;
    }
  }

  private replayJournal(): void {
    const lines = readFileSync(this.journalFile, 'utf8').split('\n');
    const last = lines.length - 1; // after the final '\n' (or the torn tail)
    for (let i = 0; i <= last; i++) {
      if (lines[i] === '') continue;
      let change: RegistryChange;
      try {
        change = JSON.parse(lines[i]) as RegistryChange;
      } catch (err) {
        if (i === last) break; // torn append: the change was never acknowledged
        throw new Error(`journal line ${i + 1} is corrupt: ${(err as Error).message}`);
      }
      this.apply(change);
    }
  }

  private snapshot(): RegistrySnapshot {
    return {
      ...emptySnapshot(),
      devices: [...this.devices.values()],
      types: [...this.types.values()],
      apiKeys: [...this.apiKeys.values()],
      provisioning: [...this.provisioning.values()],
    };
  }

  /** Writes the snapshot atomically, then empties the journal it now contains. */
  private compact(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    writeFileAtomicSync(this.file, JSON.stringify(this.snapshot()));
    if (this.journalFd === undefined) this.journalFd = openSync(this.journalFile, 'a', 0o600);
    ftruncateSync(this.journalFd);
    fdatasyncSync(this.journalFd);
    this.journalEntries = 0;
  }

  private lock(): void {
    if (openFiles.has(this.file))
      throw new Error('already open in this process (one writer per registry file)');
    mkdirSync(dirname(this.file), { recursive: true });
    if (existsSync(this.lockFile)) {
      const pid = Number(readFileSync(this.lockFile, 'utf8'));
      if (pid !== process.pid && processAlive(pid))
        throw new Error(`in use by process ${pid} (lock file ${this.lockFile})`);
    }
    writeFileSync(this.lockFile, String(process.pid), { mode: 0o600 });
    openFiles.add(this.file);
  }

  private unlock(): void {
    openFiles.delete(this.file);
    try {
      unlinkSync(this.lockFile);
    } catch {
      // already gone: nothing to release
    }
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
