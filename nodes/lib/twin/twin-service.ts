import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../clock';
import type { DeviceRecord } from '../device-contracts';
import { counter } from '../metrics';
import { applyMergePatch, changedKeys, deltaOf, isPlainObject, jsonProblem } from './json-doc';
import type { Durability, StoredTwin, TwinDoc, TwinStore } from './store';
import { parseWhere, WhereSyntaxError, type TwinPredicate } from './where';

export type { TwinDoc, TwinStore } from './store';

/** A device's twin as callers see it. Read-only: documents are replaced on change, never edited in place. */
export interface TwinView {
  deviceId: string;
  desired: TwinDoc;
  reported: TwinDoc;
  /** Desired values the reported state does not show yet (only the differing leaves). */
  delta: Record<string, unknown>;
}

export type TwinErrorCode = 'VERSION_CONFLICT' | 'TOO_LARGE' | 'UNKNOWN_DEVICE' | 'INVALID';

const HTTP_STATUS: Record<TwinErrorCode, number> = {
  VERSION_CONFLICT: 409,
  TOO_LARGE: 413,
  UNKNOWN_DEVICE: 404,
  INVALID: 400,
};

/** A refused twin operation: `code` for programs (and `status` for HTTP), `reason` for people. */
export class TwinError extends Error {
  readonly status: number;
  constructor(
    readonly code: TwinErrorCode,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'TwinError';
    this.status = HTTP_STATUS[code];
  }
}

export interface TwinLimits {
  /** Largest desired or reported state, serialized as JSON (bytes). */
  maxDocBytes: number;
  /** Deepest nesting of a state or patch (the state object itself is level 1). */
  maxDepth: number;
}

export const DEFAULT_TWIN_LIMITS: TwinLimits = { maxDocBytes: 16 * 1024, maxDepth: 8 };

/** What the service needs to know about devices: whether one exists, and its type. */
export interface TwinDirectory {
  getDevice(id: string): Pick<DeviceRecord, 'id' | 'type'> | undefined;
  /** When offered (the registry): a removed device's twin is forgotten. */
  on?(event: 'removed', listener: (deviceId: string) => void): unknown;
  off?(event: 'removed', listener: (deviceId: string) => void): unknown;
}

export interface TwinServiceOptions {
  store: TwinStore;
  directory: TwinDirectory;
  clock?: Clock;
  limits?: Partial<TwinLimits>;
}

export interface TwinFilter {
  /** Only devices of this type. */
  type?: string;
  /** A condition over the twin (syntax in where.ts / docs/twin.md), or one already parsed. */
  where?: string | TwinPredicate;
}

export interface TwinEvents {
  /** Desired state changed (operator, flow or campaign). */
  desired: [deviceId: string, view: TwinView];
  /** The device reported a change; `patch` is what it sent. */
  reported: [deviceId: string, view: TwinView, patch: Record<string, unknown>];
  /** The device was removed from the registry and its twin forgotten. */
  removed: [deviceId: string];
}

const rejectedTotal = counter('iotb_twin_rejected_total', 'Twin updates refused, by side and code', [
  'side',
  'code',
] as const);
const updatesTotal = counter('iotb_twin_updates_total', 'Twin updates that changed a document, by side', [
  'side',
] as const);

const EMPTY_DOC: TwinDoc = Object.freeze({
  state: Object.freeze({}),
  version: 0,
  updatedAt: Object.freeze({}),
});

type Side = 'desired' | 'reported';

/**
 * Device twins (like AWS IoT Device Shadow): per device a `desired` document (what the operator wants) and a
 * `reported` document (what the device says it has), each with a version bumped per change and a timestamp
 * per top-level key; `delta` is what desired asks for that reported does not show. Changes are RFC 7386 JSON
 * merge patches; a desired change may name the version it was based on and is refused with VERSION_CONFLICT
 * when desired has moved on. A patch that changes nothing bumps no version and emits nothing. Every change is
 * in the store before the call returns (docs/twin.md, "Durability").
 */
export class TwinService extends EventEmitter<TwinEvents> {
  readonly limits: TwinLimits;
  private readonly twins = new Map<string, StoredTwin>();
  private readonly store: TwinStore;
  private readonly directory: TwinDirectory;
  private readonly clock: Clock;
  private closed = false;
  /** Inside `batch`: desired changes wait for one fsync at its end instead of one each. */
  private batching = 0;
  private readonly onRemoved = (deviceId: string): void => {
    if (this.closed || !this.twins.delete(deviceId)) return;
    this.store.remove(deviceId);
    this.emit('removed', deviceId);
  };

  constructor(opts: TwinServiceOptions) {
    super();
    this.store = opts.store;
    this.directory = opts.directory;
    this.clock = opts.clock ?? systemClock;
    this.limits = { ...DEFAULT_TWIN_LIMITS, ...opts.limits };
    for (const t of this.store.load()) this.twins.set(t.deviceId, t);
    this.directory.on?.('removed', this.onRemoved);
  }

  /** The device's twin (empty documents at version 0 before the first change); undefined for an unknown device. */
  get(deviceId: string): TwinView | undefined {
    if (!this.directory.getDevice(deviceId)) return undefined;
    return viewOf(this.twins.get(deviceId) ?? emptyTwin(deviceId));
  }

  /**
   * Applies a merge patch to desired. `expectedVersion`: the desired version the caller based the patch on;
   * a different current version refuses the patch (VERSION_CONFLICT). Durable before it returns.
   */
  patchDesired(deviceId: string, mergePatch: unknown, expectedVersion?: number): TwinView {
    if (
      expectedVersion !== undefined &&
      (typeof expectedVersion !== 'number' || !Number.isInteger(expectedVersion) || expectedVersion < 0)
    )
      throw this.refuse('desired', 'INVALID', 'the expected version must be a whole number >= 0');
    return this.update('desired', deviceId, mergePatch, 'now', expectedVersion);
  }

  /** Merges a device's report into reported (a crash of the process loses nothing; see docs/twin.md). */
  mergeReported(deviceId: string, patch: unknown): TwinView {
    return this.update('reported', deviceId, patch, 'soon');
  }

  /** Twins of known devices that pass the filter (a device without a twin yet is not listed). */
  list(filter: TwinFilter = {}): TwinView[] {
    let where: TwinPredicate | undefined;
    try {
      where = typeof filter.where === 'string' ? parseWhere(filter.where) : filter.where;
    } catch (err) {
      if (err instanceof WhereSyntaxError) throw new TwinError('INVALID', `where: ${err.message}`);
      throw err;
    }
    const out: TwinView[] = [];
    for (const twin of this.twins.values()) {
      const device = this.directory.getDevice(twin.deviceId);
      if (!device || (filter.type !== undefined && device.type !== filter.type)) continue;
      const view = viewOf(twin);
      if (
        where &&
        !where({
          deviceId: twin.deviceId,
          type: device.type,
          desired: twin.desired.state,
          reported: twin.reported.state,
          delta: view.delta,
          desiredVersion: twin.desired.version,
          reportedVersion: twin.reported.version,
        })
      )
        continue;
      out.push(view);
    }
    return out;
  }

  /**
   * Runs `fn` (e.g. a desired change for every device of a wave) with one fsync at its end instead of one per
   * desired change: everything changed inside is durable when `batch` returns. Events (and the publications to
   * devices) go out as each change is made, before that fsync: after a power loss in between a device may run
   * a desired value the backend no longer has; its report then shows up as a delta.
   */
  batch<T>(fn: () => T): T {
    this.batching++;
    try {
      return fn();
    } finally {
      if (--this.batching === 0 && !this.closed) this.store.flush();
    }
  }

  /** Number of twins held (devices with at least one change). */
  get size(): number {
    return this.twins.size;
  }

  /** Makes every change so far durable (also device reports still waiting for their grouped fsync). */
  flush(): void {
    this.store.flush();
  }

  /** Flushes and releases the store; the service is unusable afterwards. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.directory.off?.('removed', this.onRemoved);
    this.store.close();
  }

  private update(
    side: Side,
    deviceId: string,
    patch: unknown,
    durability: Durability,
    expectedVersion?: number,
  ): TwinView {
    if (this.closed) throw new Error('the twin service is closed');
    if (!this.directory.getDevice(deviceId))
      throw this.refuse(side, 'UNKNOWN_DEVICE', `device "${deviceId}" is not registered`);
    if (!isPlainObject(patch)) throw this.refuse(side, 'INVALID', `the ${side} patch must be a JSON object`);
    const problem = jsonProblem(patch, this.limits.maxDepth);
    if (problem) throw this.refuse(side, 'INVALID', `the ${side} patch is not valid: ${problem}`);
    const twin = this.twins.get(deviceId) ?? emptyTwin(deviceId);
    const doc = twin[side];
    if (expectedVersion !== undefined && expectedVersion !== doc.version)
      throw this.refuse(
        side,
        'VERSION_CONFLICT',
        `${side} is at version ${doc.version}, the patch was based on version ${expectedVersion}`,
      );
    const state = applyMergePatch(doc.state, patch);
    if (state === doc.state) return viewOf(twin);
    const bytes = Buffer.byteLength(JSON.stringify(state));
    if (bytes > this.limits.maxDocBytes)
      throw this.refuse(
        side,
        'TOO_LARGE',
        `${side} would be ${bytes} bytes of JSON, the limit is ${this.limits.maxDocBytes}`,
      );
    const now = this.clock.now();
    const updatedAt = { ...doc.updatedAt };
    for (const key of changedKeys(doc.state, state)) {
      if (key in state) updatedAt[key] = now;
      else Reflect.deleteProperty(updatedAt, key);
    }
    const next: StoredTwin = { ...twin, [side]: { state, version: doc.version + 1, updatedAt } };
    this.store.put(next, this.batching > 0 ? 'soon' : durability);
    this.twins.set(deviceId, next);
    updatesTotal.labels(side).inc();
    const view = viewOf(next);
    if (side === 'desired') this.emit('desired', deviceId, view);
    else this.emit('reported', deviceId, view, patch);
    return view;
  }

  private refuse(side: Side, code: TwinErrorCode, reason: string): TwinError {
    rejectedTotal.labels(side, code).inc();
    return new TwinError(code, reason);
  }
}

function emptyTwin(deviceId: string): StoredTwin {
  return { deviceId, desired: EMPTY_DOC, reported: EMPTY_DOC };
}

function viewOf(twin: StoredTwin): TwinView {
  return {
    deviceId: twin.deviceId,
    desired: twin.desired,
    reported: twin.reported,
    delta: deltaOf(twin.desired.state, twin.reported.state),
  };
}
