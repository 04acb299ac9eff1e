import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { DeviceDirectory, DeviceRecord, DeviceType } from '../device-contracts';
import { DEVICE_ID_MAX_LENGTH, isValidDeviceId } from '../device-id';
import { securityEvent, type SecurityEvent } from '../security-events';
import {
  API_KEY_PREFIX,
  DEVICE_TOKEN_PREFIX,
  PROVISIONING_KEY_PREFIX,
  TokenHasher,
  deriveSigningKey,
  digestsEqual,
  generateToken,
} from './credentials';
import { DeviceTypes } from './device-types';
import { RegistryError } from './errors';
import type {
  DeviceStore,
  RegistryChange,
  StoredApiKey,
  StoredCredential,
  StoredDevice,
  StoredProvisioning,
} from './store';

export { RegistryError, type RegistryErrorCode } from './errors';

/** What the iotb-registry config node offers: `RED.nodes.getNode(config.registry).registry`. */
export interface RegistryHolder {
  /** Undefined while the registry could not be opened (the config node logged why). */
  registry?: Registry;
}

/** The id `verifyApiKey` answers for the operator key given in configuration. */
export const CONFIG_API_KEY_ID = 'config';

const MAX_NAME_LENGTH = 200;
const MAX_META_BYTES = 4096;

export interface RegistryOptions {
  /** How long the previous token keeps working after a rotation (ms); default 1 hour. */
  rotationGraceMs?: number;
  /** Clock, for tests of expiry. */
  now?: () => number;
  /**
   * An operator API key from configuration (Node-RED credentials), valid in addition to the stored ones
   * and never written to the store: the key to bootstrap the HTTP API. Verifies as API key id 'config'.
   */
  operatorKey?: string;
}

/** The outcome of checking a device's token; failures are shared constants (no allocation per attempt). */
export type VerifyResult =
  | {
      ok: true;
      device: DeviceRecord;
      /** hash of the matching token, for `isCredentialLive` */ credential: string;
    }
  | { ok: false; reason: 'unknown_device' | 'bad_token' | 'disabled' };

const UNKNOWN: VerifyResult = Object.freeze({ ok: false, reason: 'unknown_device' });
const BAD_TOKEN: VerifyResult = Object.freeze({ ok: false, reason: 'bad_token' });
const DISABLED: VerifyResult = Object.freeze({ ok: false, reason: 'disabled' });

/**
 * A device in memory: what is stored, plus the public record and the token digests as Buffers, both
 * built on first use so that loading 100k devices does not pay for 100k of each.
 */
interface DeviceEntry {
  stored: StoredDevice;
  record?: DeviceRecord;
  digests?: Buffer[];
  signingKeys?: (Buffer | undefined)[];
}

export interface NewDevice {
  id?: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
  enabled?: boolean;
}

export interface DeviceUpdate {
  type?: string;
  name?: string;
  meta?: Record<string, unknown>;
}

/** What a Registry emits; each after the change is committed to the store. */
export interface RegistryEvents {
  created: [deviceId: string];
  /** Every token of the device is gone (revoked, or the device removed). */
  revoked: [deviceId: string];
  disabled: [deviceId: string];
  enabled: [deviceId: string];
  removed: [deviceId: string];
  /** A new token; the previous one stays valid until `previousExpiresAt` (undefined: dropped at once). */
  rotated: [deviceId: string, previousExpiresAt: number | undefined];
  /** Device types were added, changed or removed. */
  types: [];
  security: [event: SecurityEvent];
}

/**
 * The device registry: devices with hashed credentials, device types, operator API keys and per-type
 * provisioning keys. Everything is held in memory (Maps: O(1) lookups on the connect path) and each change
 * is committed to the store before the call returns. Implements `DeviceDirectory`; events in `RegistryEvents`.
 */
export class Registry extends EventEmitter<RegistryEvents> implements DeviceDirectory {
  private readonly devices = new Map<string, DeviceEntry>();
  /** Token hash -> device id, for callers that present a token without an id. */
  private readonly tokenIndex = new Map<string, string>();
  private readonly types = new DeviceTypes();
  private readonly apiKeys = new Map<string, StoredApiKey>();
  private readonly apiKeyIndex = new Map<string, string>();
  private readonly provisioning = new Map<string, StoredProvisioning & { digest: Buffer }>();
  private readonly hasher: TokenHasher;
  private readonly now: () => number;
  readonly rotationGraceMs: number;
  private closed = false;

  constructor(
    private readonly store: DeviceStore,
    secret: string,
    opts: RegistryOptions = {},
  ) {
    super();
    this.hasher = new TokenHasher(secret);
    this.now = opts.now ?? Date.now;
    this.rotationGraceMs = opts.rotationGraceMs ?? 3_600_000;
    if (opts.operatorKey !== undefined && opts.operatorKey.length < 20)
      throw new Error('the configured operator API key must be at least 20 characters');
    const snap = store.load(); // last: nothing may throw once the store holds its lock
    for (const t of snap.types) this.types.set(t);
    for (const d of snap.devices) this.index(d);
    for (const k of snap.apiKeys) {
      this.apiKeys.set(k.id, k);
      this.apiKeyIndex.set(k.hash, k.id);
    }
    for (const p of snap.provisioning)
      this.provisioning.set(p.type, { ...p, digest: Buffer.from(p.hash, 'base64url') });
    if (opts.operatorKey) this.apiKeyIndex.set(this.hasher.hash(opts.operatorKey), CONFIG_API_KEY_ID);
  }

  // ---- read side (DeviceDirectory) ----

  getDevice(id: string): DeviceRecord | undefined {
    const e = this.devices.get(id);
    return e && recordOf(e);
  }

  getType(name: string): DeviceType | undefined {
    return this.types.get(name);
  }

  get size(): number {
    return this.devices.size;
  }

  listDevices(filter: { type?: string } = {}): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    for (const e of this.devices.values())
      if (!filter.type || e.stored.type === filter.type) out.push(recordOf(e));
    return out;
  }

  /** Whether the device has a token that currently verifies (false after revoke); iotb-command refuses otherwise. */
  hasCredentials(id: string): boolean {
    const e = this.devices.get(id);
    return !!e && e.stored.credentials.some((c) => this.live(c));
  }

  /** Expiry of the device's tokens (for GET: never the hashes). */
  credentialInfo(id: string): { createdAt: number; expiresAt?: number }[] {
    const e = this.devices.get(id);
    if (!e) throw notFound(id);
    return e.stored.credentials
      .filter((c) => c.expiresAt === undefined || c.expiresAt > this.now())
      .map((c) =>
        c.expiresAt === undefined
          ? { createdAt: c.createdAt }
          : { createdAt: c.createdAt, expiresAt: c.expiresAt },
      );
  }

  // ---- credentials ----

  /**
   * Checks `token` for device `id` in constant time per stored credential. Unknown device and wrong token
   * are different reasons here (for security events) but callers answer both the same way; 'disabled' is
   * only reported to a caller that presented a valid token, so it reveals nothing to a guesser.
   */
  verifyToken(id: string, token: string | Buffer): VerifyResult {
    const e = this.devices.get(id);
    if (!e) {
      this.hasher.digest(token); // same work as a known device: no timing oracle for which ids exist
      return UNKNOWN;
    }
    const digest = this.hasher.digest(token);
    let match = -1;
    const digests = (e.digests ??= e.stored.credentials.map((c) => Buffer.from(c.hash, 'base64url')));
    for (let i = 0; i < digests.length; i++)
      if (digestsEqual(digest, digests[i]) && this.live(e.stored.credentials[i])) match = i;
    if (match < 0) return BAD_TOKEN;
    if (!e.stored.enabled) return DISABLED;
    return { ok: true, device: recordOf(e), credential: e.stored.credentials[match].hash };
  }

  /** The registry's clock (ms since epoch), which token expiry follows. */
  time(): number {
    return this.now();
  }

  /** Whether the token with this hash (from a successful verify) still verifies: not expired, not revoked. */
  isCredentialLive(id: string, credential: string): boolean {
    const e = this.devices.get(id);
    return !!e && e.stored.enabled && e.stored.credentials.some((c) => c.hash === credential && this.live(c));
  }

  /**
   * Finds the device a bare token belongs to (HTTP bearer without an id). A Map lookup by the token's
   * keyed hash: without the registry secret nobody can steer that lookup, so it leaks nothing; the stored
   * digest is then compared in constant time as with `verifyToken`.
   */
  authenticateToken(token: string | Buffer): VerifyResult {
    const id = this.tokenIndex.get(this.hasher.digest(token).toString('base64url'));
    return id === undefined ? UNKNOWN : this.verifyToken(id, token);
  }

  /**
   * The body-signing keys of the device's currently valid tokens (for iotb-auth's signed mode), or
   * undefined for an unknown device. A disabled device gets none.
   */
  signingKeys(id: string): Buffer[] | undefined {
    const e = this.devices.get(id);
    if (!e) return undefined;
    if (!e.stored.enabled) return [];
    const creds = e.stored.credentials;
    const keys = (e.signingKeys ??= creds.map((c) => (c.sig ? this.hasher.unseal(c.sig) : undefined)));
    const out: Buffer[] = [];
    for (let i = 0; i < creds.length; i++) {
      const k = keys[i];
      if (k && this.live(creds[i])) out.push(k);
    }
    return out;
  }

  /** Lets other parts (HTTP auth) report security events through the registry's 'security' stream. */
  reportSecurity(ev: SecurityEvent): void {
    this.emitSecurity(ev);
  }

  // ---- device lifecycle ----

  createDevice(input: NewDevice): { device: DeviceRecord; token: string } {
    this.assertOpen();
    const id = input.id ?? `d-${randomBytes(8).toString('hex')}`;
    if (!isValidDeviceId(id))
      throw new RegistryError(
        'INVALID',
        `device id "${String(id)}" is not valid: use 1-${DEVICE_ID_MAX_LENGTH} of A-Z a-z 0-9 _ . : - (no / + # or spaces)`,
      );
    if (this.devices.has(id)) throw new RegistryError('CONFLICT', `device ${id} already exists`);
    this.types.require(input.type);
    const token = generateToken(DEVICE_TOKEN_PREFIX);
    const stored: StoredDevice = {
      id,
      type: input.type,
      ...checkName(input.name),
      ...checkMeta(input.meta),
      enabled: input.enabled ?? true,
      createdAt: this.now(),
      credentials: [this.newCredential(token)],
    };
    this.put(stored);
    this.emit('created', id);
    return { device: recordOf(this.entry(id)), token };
  }

  updateDevice(id: string, update: DeviceUpdate): DeviceRecord {
    const e = this.entry(id);
    if (update.type !== undefined) this.types.require(update.type);
    const stored: StoredDevice = { ...e.stored };
    if (update.type !== undefined) stored.type = update.type;
    if (update.name !== undefined) Object.assign(stored, checkName(update.name));
    if (update.meta !== undefined) Object.assign(stored, checkMeta(update.meta));
    this.put(stored);
    return recordOf(this.entry(id));
  }

  /**
   * Issues a new token. The previous current token stays valid for `graceMs` (rotation without a gap),
   * any older one is dropped: at most two tokens verify at any time.
   */
  rotateToken(
    id: string,
    graceMs = this.rotationGraceMs,
  ): { device: DeviceRecord; token: string; previousExpiresAt?: number } {
    const e = this.entry(id);
    if (!Number.isFinite(graceMs) || graceMs < 0)
      throw new RegistryError('INVALID', 'graceMs must be a number >= 0');
    const now = this.now();
    const token = generateToken(DEVICE_TOKEN_PREFIX);
    const credentials: StoredCredential[] = [this.newCredential(token)];
    const current = e.stored.credentials.find((c) => c.expiresAt === undefined);
    let previousExpiresAt: number | undefined;
    if (current && graceMs > 0) {
      previousExpiresAt = now + graceMs;
      credentials.push({ ...current, expiresAt: previousExpiresAt });
    }
    this.put({ ...e.stored, credentials });
    this.emit('rotated', id, previousExpiresAt);
    this.emitSecurity(
      securityEvent('token_rotated', 'registry', graceMs > 0 ? 'rotated_with_grace' : 'rotated', id),
    );
    const device = recordOf(this.entry(id));
    return previousExpiresAt === undefined ? { device, token } : { device, token, previousExpiresAt };
  }

  /** Drops every token of the device: it can no longer authenticate; a live session is closed by the broker. */
  revokeTokens(id: string): DeviceRecord {
    const e = this.entry(id);
    this.put({ ...e.stored, credentials: [] });
    this.emit('revoked', id);
    this.emitSecurity(securityEvent('revoked', 'registry', 'tokens_revoked', id));
    return recordOf(this.entry(id));
  }

  setEnabled(id: string, enabled: boolean): DeviceRecord {
    const e = this.entry(id);
    if (e.stored.enabled !== enabled) {
      this.put({ ...e.stored, enabled });
      this.emit(enabled ? 'enabled' : 'disabled', id);
      this.emitSecurity(
        securityEvent(enabled ? 'enabled' : 'disabled', 'registry', enabled ? 'enabled' : 'disabled', id),
      );
    }
    return recordOf(this.entry(id));
  }

  /** Deletes the device and its tokens. */
  removeDevice(id: string): void {
    const e = this.entry(id);
    this.commit({ op: 'deleteDevice', id });
    this.unindex(e);
    this.devices.delete(id);
    this.emit('revoked', id);
    this.emit('removed', id);
    this.emitSecurity(securityEvent('removed', 'registry', 'device_removed', id));
  }

  // ---- device types ----

  listTypes(): DeviceType[] {
    return this.types.list();
  }

  /** Creates or replaces a type; its telemetry schema and command params schemas must compile. */
  putType(type: DeviceType | Record<string, unknown>): DeviceType {
    this.assertOpen();
    const clean = this.types.check(type);
    this.commit({ op: 'putType', type: clean });
    this.types.set(clean);
    this.emit('types');
    return clean;
  }

  deleteType(name: string): void {
    if (!this.types.has(name)) throw new RegistryError('NOT_FOUND', `device type ${name} does not exist`);
    for (const e of this.devices.values())
      if (e.stored.type === name)
        throw new RegistryError('CONFLICT', `device type ${name} is used by device ${e.stored.id}`);
    this.commit({ op: 'deleteType', name });
    this.types.delete(name);
    this.emit('types');
  }

  // ---- operator API keys ----

  createApiKey(name?: string): { id: string; key: string } {
    this.assertOpen();
    const id = randomBytes(6).toString('hex');
    const key = generateToken(API_KEY_PREFIX);
    const stored: StoredApiKey = {
      id,
      ...checkName(name),
      hash: this.hasher.hash(key),
      createdAt: this.now(),
    };
    this.commit({ op: 'putApiKey', key: stored });
    this.apiKeys.set(id, stored);
    this.apiKeyIndex.set(stored.hash, id);
    return { id, key };
  }

  listApiKeys(): { id: string; name?: string; createdAt: number }[] {
    return [...this.apiKeys.values()].map(({ hash: _hash, ...rest }) => rest);
  }

  revokeApiKey(id: string): void {
    const k = this.apiKeys.get(id);
    if (!k) throw new RegistryError('NOT_FOUND', `API key ${id} does not exist`);
    this.commit({ op: 'deleteApiKey', id });
    this.apiKeys.delete(id);
    this.apiKeyIndex.delete(k.hash);
  }

  /** The id of the API key, or undefined. Lookup by keyed hash (see `authenticateToken`). */
  verifyApiKey(key: string | Buffer): string | undefined {
    return this.apiKeyIndex.get(this.hasher.digest(key).toString('base64url'));
  }

  // ---- self-registration (fleet provisioning) ----

  /**
   * Enables self-registration for a device type: returns a new provisioning key (shown once). A device
   * that presents it may create itself once, with an id on the allow-list (exact ids, or prefixes ending in `*`).
   */
  setProvisioning(type: string, allow: string[]): { key: string } {
    this.assertOpen();
    this.types.require(type);
    if (
      !Array.isArray(allow) ||
      allow.length === 0 ||
      !allow.every((a) => typeof a === 'string' && a.length > 0)
    )
      throw new RegistryError(
        'INVALID',
        'allow must be a non-empty list of device ids or prefixes ending in *',
      );
    const key = generateToken(PROVISIONING_KEY_PREFIX);
    const stored: StoredProvisioning = {
      type,
      hash: this.hasher.hash(key),
      allow: [...allow],
      createdAt: this.now(),
    };
    this.commit({ op: 'putProvisioning', provisioning: stored });
    this.provisioning.set(type, { ...stored, digest: Buffer.from(stored.hash, 'base64url') });
    return { key };
  }

  removeProvisioning(type: string): void {
    if (!this.provisioning.has(type))
      throw new RegistryError('NOT_FOUND', `device type ${type} has no provisioning key`);
    this.commit({ op: 'deleteProvisioning', type });
    this.provisioning.delete(type);
  }

  /** A device registers itself with its type's provisioning key; answers like `createDevice`. */
  registerSelf(input: {
    type: string;
    key: string;
    id: string;
    name?: string;
    meta?: Record<string, unknown>;
  }): {
    device: DeviceRecord;
    token: string;
  } {
    const p = this.provisioning.get(input.type);
    const digest = this.hasher.digest(typeof input.key === 'string' ? input.key : '');
    if (!p || !digestsEqual(digest, p.digest)) {
      this.emitSecurity(securityEvent('auth_failure', 'registry', 'bad_provisioning_key', input.id));
      throw new RegistryError('FORBIDDEN', 'provisioning key not valid for this device type');
    }
    if (
      !isValidDeviceId(input.id) ||
      !p.allow.some((a) => (a.endsWith('*') ? input.id.startsWith(a.slice(0, -1)) : a === input.id))
    ) {
      this.emitSecurity(
        securityEvent(
          'auth_failure',
          'registry',
          'id_not_allowed',
          isValidDeviceId(input.id) ? input.id : undefined,
        ),
      );
      throw new RegistryError(
        'FORBIDDEN',
        'this device id may not register itself with this provisioning key',
      );
    }
    const created = this.createDevice({ id: input.id, type: input.type, name: input.name, meta: input.meta });
    this.emitSecurity(securityEvent('registered', 'registry', 'self_registered', input.id));
    return created;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.store.close();
    this.removeAllListeners();
  }

  // ---- internals ----

  private newCredential(token: string): StoredCredential {
    return {
      hash: this.hasher.hash(token),
      createdAt: this.now(),
      sig: this.hasher.seal(deriveSigningKey(token)),
    };
  }

  private live(c: StoredCredential): boolean {
    return c.expiresAt === undefined || c.expiresAt > this.now();
  }

  private entry(id: string): DeviceEntry {
    this.assertOpen();
    const e = this.devices.get(id);
    if (!e) throw notFound(id);
    return e;
  }

  private put(stored: StoredDevice): void {
    this.commit({ op: 'putDevice', device: stored });
    const old = this.devices.get(stored.id);
    if (old) this.unindex(old);
    this.index(stored);
  }

  private index(stored: StoredDevice): void {
    this.devices.set(stored.id, { stored });
    for (const c of stored.credentials) this.tokenIndex.set(c.hash, stored.id);
  }

  private unindex(e: DeviceEntry): void {
    for (const c of e.stored.credentials) this.tokenIndex.delete(c.hash);
  }

  private commit(change: RegistryChange): void {
    this.assertOpen();
    this.store.commit(change);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the device registry is closed');
  }

  private emitSecurity(ev: SecurityEvent): void {
    this.emit('security', ev);
  }
}

function recordOf(e: DeviceEntry): DeviceRecord {
  if (e.record) return e.record;
  const d = e.stored;
  const record: DeviceRecord = { id: d.id, type: d.type, enabled: d.enabled, createdAt: d.createdAt };
  if (d.name !== undefined) record.name = d.name;
  if (d.meta !== undefined) record.meta = d.meta;
  return (e.record = Object.freeze(record));
}

function notFound(id: string): RegistryError {
  return new RegistryError('NOT_FOUND', `device ${id} does not exist`);
}

function checkName(name: unknown): { name?: string } {
  if (name === undefined || name === null || name === '') return {};
  if (typeof name !== 'string' || name.length > MAX_NAME_LENGTH)
    throw new RegistryError('INVALID', `name must be a string of at most ${MAX_NAME_LENGTH} characters`);
  return { name };
}

function checkMeta(meta: unknown): { meta?: Record<string, unknown> } {
  if (meta === undefined || meta === null) return {};
  if (typeof meta !== 'object' || Array.isArray(meta))
    throw new RegistryError('INVALID', 'meta must be a JSON object');
  if (Buffer.byteLength(JSON.stringify(meta)) > MAX_META_BYTES)
    throw new RegistryError('INVALID', `meta must be at most ${MAX_META_BYTES} bytes as JSON`);
  return { meta: meta as Record<string, unknown> };
}
