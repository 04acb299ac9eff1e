import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, writeFileAtomicSync } from '../atomic-file';
import { TYPE_NAME_PATTERN } from '../device-id';
import { FirmwareError } from './errors';
import { isSemver, compareSemver } from './semver';
import type { FirmwareSigner } from './signing';

/** One stored firmware image and its signed manifest. */
export interface Artifact {
  type: string;
  version: string;
  size: number;
  /** SHA-256 of the image, lower-case hex; also the download's ETag. */
  sha256: string;
  /** Ed25519 signature (base64) of `signedMessage({ type, version, size, sha256 })`. */
  signature: string;
  notes: string;
  uploadedAt: number;
  /** Who uploaded it: the operator API key id. */
  uploadedBy?: string;
}

export interface UploadMeta {
  type: unknown;
  version: unknown;
  notes?: unknown;
  uploadedBy?: string;
  /** The request's Content-Length, when it declared one: refused before reading when over the limit. */
  declaredLength?: number;
}

export interface ArtifactStoreOptions {
  /** Largest image accepted, bytes. */
  maxBytes: number;
  /** Known device types; an upload for another type is refused. Undefined: any valid type name. */
  knownType?: (type: string) => boolean;
  now?: () => number;
}

export const MAX_NOTES_LENGTH = 4096;

/**
 * Firmware images on disk: `<dir>/<type>/<version>.bin` and beside it `<version>.json` (the manifest). An upload
 * streams into a temp file while it is hashed and counted (never held in memory), is fsynced and renamed into
 * place, and becomes visible only when its manifest is written (atomically): a crash mid-upload leaves no
 * artifact, and the temp files are removed at the next start. A version is never replaced: the same type and
 * version again is refused, so a device that verified an image can trust the name.
 */
export class ArtifactStore {
  private readonly byKey = new Map<string, Artifact>();
  /** Uploads under way, so that two concurrent uploads of one version cannot both succeed. */
  private readonly uploading = new Set<string>();
  private readonly now: () => number;

  constructor(
    readonly dir: string,
    private readonly signer: FirmwareSigner,
    private readonly opts: ArtifactStoreOptions,
  ) {
    this.now = opts.now ?? Date.now;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.load();
  }

  get publicKeyPem(): string {
    return this.signer.publicKeyPem;
  }

  get publicKeyRaw(): string {
    return this.signer.publicKeyRaw;
  }

  get(type: string, version: string): Artifact | undefined {
    return this.byKey.get(key(type, version));
  }

  /** Artifacts, newest version first per type; only those of `type` when given. */
  list(type?: string): Artifact[] {
    const all = [...this.byKey.values()].filter((a) => type === undefined || a.type === type);
    return all.sort((a, b) =>
      a.type === b.type ? compareSemver(b.version, a.version) : a.type < b.type ? -1 : 1,
    );
  }

  filePath(a: Pick<Artifact, 'type' | 'version'>): string {
    return join(this.dir, a.type, `${a.version}.bin`);
  }

  /** Streams `body` into the store; resolves with the signed artifact or rejects with a FirmwareError. */
  async upload(body: Readable, meta: UploadMeta): Promise<Artifact> {
    const { type, version, notes } = this.checkMeta(meta);
    const k = key(type, version);
    if (this.byKey.has(k) || this.uploading.has(k))
      throw new FirmwareError('DUPLICATE_VERSION', `firmware ${version} for type ${type} already exists`);
    if (meta.declaredLength !== undefined && meta.declaredLength > this.opts.maxBytes)
      throw tooLarge(this.opts.maxBytes);
    this.uploading.add(k);
    const typeDir = join(this.dir, type);
    const tmp = join(this.dir, `.upload-${randomBytes(8).toString('hex')}`);
    let fd: number | undefined;
    try {
      mkdirSync(typeDir, { recursive: true, mode: 0o700 });
      fd = openSync(tmp, 'w', 0o600);
      const hash = createHash('sha256');
      let size = 0;
      // Not destroyed on a refusal, so the HTTP side can still answer 413 before it drops the connection.
      for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > this.opts.maxBytes) throw tooLarge(this.opts.maxBytes);
        hash.update(chunk);
        writeSync(fd, chunk);
      }
      if (size === 0) throw new FirmwareError('INVALID', 'the firmware image is empty');
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      const sha256 = hash.digest('hex');
      const artifact: Artifact = {
        type,
        version,
        size,
        sha256,
        signature: this.signer.sign({ type, version, size, sha256 }),
        notes,
        uploadedAt: this.now(),
        ...(meta.uploadedBy ? { uploadedBy: meta.uploadedBy } : {}),
      };
      renameSync(tmp, this.filePath(artifact));
      fsyncDir(typeDir);
      // The manifest is the commit point: without it the image does not exist.
      writeFileAtomicSync(join(typeDir, `${version}.json`), JSON.stringify(artifact, null, 2) + '\n');
      this.byKey.set(k, artifact);
      return artifact;
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    } finally {
      this.uploading.delete(k);
    }
  }

  private checkMeta(meta: UploadMeta): { type: string; version: string; notes: string } {
    const { type, version } = meta;
    if (typeof type !== 'string' || !TYPE_NAME_PATTERN.test(type))
      throw new FirmwareError('INVALID', 'type must be a device type name');
    if (this.opts.knownType && !this.opts.knownType(type))
      throw new FirmwareError('INVALID', `device type ${type} is not in the registry`);
    if (!isSemver(version))
      throw new FirmwareError(
        'INVALID',
        'version must be a semantic version (e.g. 2.4.1), at most 64 characters',
      );
    const notes = meta.notes ?? '';
    if (typeof notes !== 'string' || notes.length > MAX_NOTES_LENGTH)
      throw new FirmwareError(
        'INVALID',
        `release notes must be text of at most ${MAX_NOTES_LENGTH} characters`,
      );
    return { type, version, notes };
  }

  private load(): void {
    for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.upload-')) rmSync(join(this.dir, entry.name), { force: true });
      if (!entry.isDirectory() || !TYPE_NAME_PATTERN.test(entry.name)) continue;
      const typeDir = join(this.dir, entry.name);
      for (const f of readdirSync(typeDir)) {
        if (!f.endsWith('.json')) continue;
        const a = JSON.parse(readFileSync(join(typeDir, f), 'utf8')) as Artifact;
        if (a.type === entry.name && isSemver(a.version) && existsSync(this.filePath(a)))
          this.byKey.set(key(a.type, a.version), a);
      }
    }
  }
}

function key(type: string, version: string): string {
  return `${type}\n${version}`;
}

function tooLarge(max: number): FirmwareError {
  return new FirmwareError('TOO_LARGE', `the firmware image is larger than the limit of ${max} bytes`);
}
