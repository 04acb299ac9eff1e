import type { DeviceType } from '../device-contracts';

/** One token's keyed hash (HMAC-SHA-256, base64url) and its optional expiry. */
export interface StoredCredential {
  hash: string;
  createdAt: number;
  /** After this (ms since epoch) the token no longer verifies; set on the old token during rotation. */
  expiresAt?: number;
  /** The token's body-signing key, sealed with the registry secret (see TokenHasher.seal). */
  sig?: string;
}

export interface StoredDevice {
  id: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
  enabled: boolean;
  createdAt: number;
  /** At most two: the current token and, during a rotation's grace period, the previous one. */
  credentials: StoredCredential[];
}

/** An operator API key (for the HTTP API); only its keyed hash is stored. */
export interface StoredApiKey {
  id: string;
  name?: string;
  hash: string;
  createdAt: number;
}

/** Self-registration for one device type: the keyed hash of its provisioning key and the ids it may claim. */
export interface StoredProvisioning {
  type: string;
  hash: string;
  /** Exact device ids, or prefixes ending in `*`. */
  allow: string[];
  createdAt: number;
}

export interface RegistrySnapshot {
  version: 1;
  devices: StoredDevice[];
  types: DeviceType[];
  apiKeys: StoredApiKey[];
  provisioning: StoredProvisioning[];
}

/** One durable change; a store applies them in order. */
export type RegistryChange =
  | { op: 'putDevice'; device: StoredDevice }
  | { op: 'deleteDevice'; id: string }
  | { op: 'putType'; type: DeviceType }
  | { op: 'deleteType'; name: string }
  | { op: 'putApiKey'; key: StoredApiKey }
  | { op: 'deleteApiKey'; id: string }
  | { op: 'putProvisioning'; provisioning: StoredProvisioning }
  | { op: 'deleteProvisioning'; type: string };

/**
 * Where the registry keeps its state. The registry holds everything in memory for O(1) lookups on the
 * connect path and hands every change to the store before it answers, so a change that was answered is
 * durable. The file store is the one-machine implementation; a Redis (HSET per record) or PostgreSQL
 * (one row per record) store implements the same three calls.
 */
export interface DeviceStore {
  /** Reads the full state (empty on first use). Called once, before any `commit`. */
  load(): RegistrySnapshot;
  /** Makes one change durable before returning. */
  commit(change: RegistryChange): void;
  /** Flushes and releases the store (e.g. its lock); the store is unusable afterwards. */
  close(): void;
}

export function emptySnapshot(): RegistrySnapshot {
  return { version: 1, devices: [], types: [], apiKeys: [], provisioning: [] };
}
