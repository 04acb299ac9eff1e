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
import type { DeviceType } from '../device-contracts';
import { writeFileAtomicSync } from '../atomic-file';
import { lockFile, unlockFile } from '../file-lock';
import {
  emptySnapshot,
  type DeviceStore,
  type RegistryChange,
  type RegistrySnapshot,
  type StoredApiKey,
  type StoredCredential,
  type StoredDevice,
  type StoredProvisioning,
} from './store';

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
    this.compactEvery = opts.compactEvery ?? 10_000;
  }

  load(): RegistrySnapshot {
    lockFile(this.file, 'registry');
    try {
      let snap = emptySnapshot();
      if (existsSync(this.file)) {
        // The version is checked before the rest is trusted: a file of another version has another shape.
        const onDisk = JSON.parse(readFileSync(this.file, 'utf8')) as SnapshotFile | { version: unknown };
        if (onDisk.version !== 1 || !('devices' in onDisk))
          throw new Error(`unsupported registry file version ${String(onDisk.version)}`);
        snap = { ...snap, ...onDisk, devices: onDisk.devices.map(decodeDevice) };
        for (const d of snap.devices) this.devices.set(d.id, d);
        for (const t of snap.types) this.types.set(t.name, t);
        for (const k of snap.apiKeys) this.apiKeys.set(k.id, k);
        for (const p of snap.provisioning) this.provisioning.set(p.type, p);
      }
      const replayed = existsSync(this.journalFile) ? this.replayJournal() : 0;
      if (replayed > 0 || !existsSync(this.file)) {
        this.compact();
        return this.snapshot();
      }
      this.journalFd = openSync(this.journalFile, 'a', 0o600);
      return snap;
    } catch (err) {
      unlockFile(this.file);
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
      unlockFile(this.file);
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

  /** Applies the journal's complete lines; returns how many. */
  private replayJournal(): number {
    const lines = readFileSync(this.journalFile, 'utf8').split('\n');
    const last = lines.length - 1; // after the final '\n' (or the torn tail)
    let applied = 0;
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
      applied++;
    }
    return applied;
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
    const snap = this.snapshot();
    const file: SnapshotFile = { ...snap, devices: snap.devices.map(encodeDevice) };
    writeFileAtomicSync(this.file, JSON.stringify(file));
    if (this.journalFd === undefined) this.journalFd = openSync(this.journalFile, 'a', 0o600);
    ftruncateSync(this.journalFd);
    fdatasyncSync(this.journalFd);
    this.journalEntries = 0;
  }
}

/**
 * On disk a device is a tuple, not an object: JSON.parse reads arrays of 100k devices about 2.5 times
 * faster than objects with repeated keys, which keeps loading 100k devices well under a second.
 * [id, type, enabled 0|1, createdAt, name|null, meta|null, then per credential: hash, createdAt, expiresAt|null, sig|null]
 */
type DeviceTuple = (string | number | null | Record<string, unknown>)[];

interface SnapshotFile extends Omit<RegistrySnapshot, 'devices'> {
  devices: DeviceTuple[];
}

function encodeDevice(d: StoredDevice): DeviceTuple {
  const t: DeviceTuple = [d.id, d.type, d.enabled ? 1 : 0, d.createdAt, d.name ?? null, d.meta ?? null];
  for (const c of d.credentials) t.push(c.hash, c.createdAt, c.expiresAt ?? null, c.sig ?? null);
  return t;
}

function decodeDevice(t: DeviceTuple): StoredDevice {
  const d: StoredDevice = {
    id: t[0] as string,
    type: t[1] as string,
    enabled: t[2] === 1,
    createdAt: t[3] as number,
    credentials: [],
  };
  if (t[4] !== null) d.name = t[4] as string;
  if (t[5] !== null) d.meta = t[5] as Record<string, unknown>;
  for (let i = 6; i + 3 < t.length; i += 4) {
    const c: StoredCredential = { hash: t[i] as string, createdAt: t[i + 1] as number };
    if (t[i + 2] !== null) c.expiresAt = t[i + 2] as number;
    if (t[i + 3] !== null) c.sig = t[i + 3] as string;
    d.credentials.push(c);
  }
  return d;
}
