import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { isValidDeviceId } from '../device-id';
import type { Artifact } from './artifact-store';
import type { CampaignStore } from './campaign-store';
import { FirmwareError } from './errors';

/** A device's way through a campaign; exactly one of the last five ends it. */
export type DeviceState =
  | 'PENDING'
  | 'NOTIFIED'
  | 'DOWNLOADING'
  | 'INSTALLING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'TIMED_OUT'
  | 'CANCELED'
  | 'SKIPPED';

export const DEVICE_STATES: readonly DeviceState[] = [
  'PENDING',
  'NOTIFIED',
  'DOWNLOADING',
  'INSTALLING',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'CANCELED',
  'SKIPPED',
];

const FINAL: ReadonlySet<DeviceState> = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'SKIPPED']);
const IN_FLIGHT: ReadonlySet<DeviceState> = new Set(['NOTIFIED', 'DOWNLOADING', 'INSTALLING']);
/** The order of the in-flight states: progress never moves a device backwards. */
const RANK: Partial<Record<DeviceState, number>> = { NOTIFIED: 1, DOWNLOADING: 2, INSTALLING: 3 };

export function isFinal(s: DeviceState): boolean {
  return FINAL.has(s);
}

/**
 * RUNNING: the current wave is being notified and watched. SOAKING: the wave is done, the next starts at
 * `soakUntil`. PAUSED: stopped by the failure threshold (or the operator); in-flight devices are still watched,
 * nobody new is notified. COMPLETED: every wave is done. ABORTED: the operator ended it.
 */
export type CampaignStatus = 'RUNNING' | 'SOAKING' | 'PAUSED' | 'COMPLETED' | 'ABORTED';

export interface CampaignDevice {
  id: string;
  wave: number;
  state: DeviceState;
  /** When the state was entered (ms). */
  at: number;
  /** When the device was notified; its timeout counts from here. */
  notifiedAt?: number;
  reason?: string;
}

export interface CampaignHeader {
  id: string;
  name?: string;
  type: string;
  version: string;
  size: number;
  sha256: string;
  signature: string;
  url: string;
  /** Cumulative percentages of the target, the last one 100. */
  waves: number[];
  soakMs: number;
  timeoutMs: number;
  /** A wave whose (FAILED + TIMED_OUT) / (devices of the wave not SKIPPED) exceeds this pauses the campaign. */
  failureThreshold: number;
  /** Devices in NOTIFIED, DOWNLOADING or INSTALLING at once. */
  maxConcurrent: number;
  status: CampaignStatus;
  /** Index of the current wave. */
  wave: number;
  /** Waves the operator resumed after a threshold pause: not checked again. */
  resumedWaves: number[];
  soakUntil?: number;
  reason?: string;
  createdAt: number;
  updatedAt: number;
}

export interface Campaign extends CampaignHeader {
  devices: CampaignDevice[];
}

/** What a campaign is asked for (the HTTP body of `POST /api/firmware/campaigns`). */
export interface CampaignSpec {
  name?: unknown;
  type?: unknown;
  version?: unknown;
  /** Explicit device ids (each must be of `type`), instead of every device of the type. */
  devices?: unknown;
  /** Equality filter on the type's devices: `{ "meta.site": "north", "reported.hw": "b" }`. */
  where?: unknown;
  waves?: unknown;
  soakS?: unknown;
  timeoutS?: unknown;
  failureThreshold?: unknown;
  maxConcurrent?: unknown;
}

/** The part of the twin service a campaign uses (nodes/lib/twin/twin-service.ts). */
export interface TwinDocLike {
  state: Record<string, unknown>;
  version: number;
}
export interface TwinViewLike {
  deviceId: string;
  desired: TwinDocLike;
  reported: TwinDocLike;
}
export interface FirmwareTwins {
  get(deviceId: string): TwinViewLike | undefined;
  patchDesired(deviceId: string, patch: Record<string, unknown>): unknown;
  on(event: 'reported', listener: (deviceId: string, view: TwinViewLike) => void): unknown;
  off(event: 'reported', listener: (deviceId: string, view: TwinViewLike) => void): unknown;
  /** Runs `fn` with one fsync at its end for all its desired changes (a wave's notifications). */
  batch?<T>(fn: () => T): T;
}

/** The part of the registry a campaign uses. */
export interface CampaignDevices {
  listDevices(filter: { type: string }): { id: string; type: string; meta?: Record<string, unknown> }[];
  getDevice(id: string): { id: string; type: string } | undefined;
}

/** The desired firmware document a campaign writes into a device's twin (`desired.firmware`). */
export interface FirmwareOffer {
  version: string;
  url: string;
  size: number;
  sha256: string;
  signature: string;
  campaign: string;
}

export interface CampaignTransition {
  campaign: string;
  deviceId: string;
  wave: number;
  from: DeviceState;
  to: DeviceState;
  at: number;
  reason?: string;
}

export interface CampaignStatusChange {
  campaign: string;
  from: CampaignStatus;
  to: CampaignStatus;
  wave: number;
  at: number;
  reason?: string;
}

export interface CampaignEngineEvents {
  device: [CampaignTransition];
  status: [CampaignStatusChange];
  error: [Error];
}

export interface CampaignEngineOptions {
  store: CampaignStore;
  twins: FirmwareTwins;
  devices: CampaignDevices;
  artifacts: { get(type: string, version: string): Artifact | undefined };
  /** The download URL put into the offer (absolute, or a path the device resolves against its base URL). */
  downloadUrl: (a: Artifact) => string;
  clock: Clock;
  /** Defaults of a spec that leaves them out. */
  defaults?: Partial<
    Pick<CampaignHeader, 'waves' | 'soakMs' | 'timeoutMs' | 'failureThreshold' | 'maxConcurrent'>
  >;
  /** Largest target, devices. */
  maxDevices?: number;
}

export const CAMPAIGN_DEFAULTS = {
  waves: [1, 10, 50, 100],
  soakMs: 600_000,
  timeoutMs: 3_600_000,
  failureThreshold: 0.05,
  maxConcurrent: 100,
};

/** The runtime side of one campaign: counts per wave and state, who is in flight, where to notify next. */
interface Live {
  c: Campaign;
  /** Index of the first device of each wave in `c.devices`, plus the end. */
  bounds: number[];
  counts: Record<DeviceState, number>[];
  inFlight: Map<string, CampaignDevice>;
  cursor: number;
}

/**
 * Staged firmware campaigns. The target is cut into waves (cumulative percentages, e.g. 1 % canary, 10 %, 50 %,
 * 100 %), in an order that is a hash of campaign and device id (a fair, reproducible sample for the canary).
 * Within the running wave at most `maxConcurrent` devices are in flight; each is notified by setting
 * `desired.firmware` in its twin and succeeds when its twin reports `firmware.version` = the campaign's version
 * within `timeoutMs`. As soon as the wave's share of FAILED + TIMED_OUT exceeds `failureThreshold` the campaign
 * pauses: nobody else is notified until an operator resumes (the wave is then not checked again) or aborts.
 * After a wave ends the next starts `soakMs` later.
 *
 * Restart rule: NOTIFIED is made durable before the twin is patched. A NOTIFIED device found at start whose
 * twin does not carry this campaign's offer was never told (the crash came between the two) and is told now;
 * one whose twin carries it is not told again. So each device is notified exactly once.
 */
export class CampaignEngine extends EventEmitter<CampaignEngineEvents> {
  private readonly live = new Map<string, Live>();
  /** In-flight device id -> its campaign (a device is in at most one active campaign). */
  private readonly byDevice = new Map<string, Live>();
  private timer: unknown;
  private timerDue = Infinity;
  private readonly onReported = (deviceId: string, view: TwinViewLike): void => this.reported(deviceId, view);
  private closed = false;

  constructor(private readonly opts: CampaignEngineOptions) {
    super();
  }

  /** Loads the stored campaigns, catches up with what happened while stopped, and carries on. */
  start(): void {
    for (const c of this.opts.store.load()) {
      const l = this.index(c);
      if (!this.active(l)) continue;
      for (const d of l.inFlight.values()) {
        const view = this.opts.twins.get(d.id);
        if (d.state === 'NOTIFIED' && !this.carriesOffer(view, c)) this.tell(l, d);
        if (view) this.apply(l, d, view);
      }
    }
    this.opts.twins.on('reported', this.onReported);
    this.step();
  }

  close(): void {
    this.closed = true;
    this.opts.twins.off('reported', this.onReported);
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.opts.store.close();
  }

  list(): Campaign[] {
    return [...this.live.values()].map((l) => l.c);
  }

  get(id: string): Campaign | undefined {
    return this.live.get(id)?.c;
  }

  /** Counts per wave and state, for the API and the dashboard. */
  summary(id: string): CampaignSummary | undefined {
    const l = this.live.get(id);
    if (!l) return undefined;
    const { devices, ...header } = l.c;
    return {
      ...header,
      devices: devices.length,
      waveProgress: l.counts.map((counts, i) => ({
        wave: i,
        percent: l.c.waves[i],
        devices: l.bounds[i + 1] - l.bounds[i],
        counts: { ...counts },
      })),
    };
  }

  create(spec: CampaignSpec): Campaign {
    const now = this.opts.clock.now();
    const d = { ...CAMPAIGN_DEFAULTS, ...this.opts.defaults };
    const type = spec.type;
    if (typeof type !== 'string' || !type) throw new FirmwareError('INVALID', 'type must name a device type');
    if (typeof spec.version !== 'string')
      throw new FirmwareError('INVALID', 'version must be a firmware version');
    const artifact = this.opts.artifacts.get(type, spec.version);
    if (!artifact) throw new FirmwareError('NOT_FOUND', `no firmware ${spec.version} for type ${type}`);
    for (const l of this.live.values())
      if (l.c.type === type && this.active(l))
        throw new FirmwareError('CONFLICT', `campaign ${l.c.id} for type ${type} is still ${l.c.status}`);
    const waves = spec.waves ?? d.waves;
    if (
      !Array.isArray(waves) ||
      waves.length === 0 ||
      waves.length > 20 ||
      waves.some(
        (w, i) => typeof w !== 'number' || !(w > 0) || w > 100 || (i > 0 && w <= (waves[i - 1] as number)),
      ) ||
      waves[waves.length - 1] !== 100
    )
      throw new FirmwareError(
        'INVALID',
        'waves must be rising cumulative percentages (0-100], the last one 100',
      );
    const num = (v: unknown, name: string, def: number, min: number, max: number): number => {
      if (v === undefined) return def;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
        throw new FirmwareError('INVALID', `${name} must be a number from ${min} to ${max}`);
      return v;
    };
    const soakMs = num(spec.soakS, 'soakS', d.soakMs / 1000, 0, 30 * 86_400) * 1000;
    const timeoutMs = num(spec.timeoutS, 'timeoutS', d.timeoutMs / 1000, 1, 30 * 86_400) * 1000;
    const failureThreshold = num(spec.failureThreshold, 'failureThreshold', d.failureThreshold, 0, 1);
    const maxConcurrent = Math.floor(num(spec.maxConcurrent, 'maxConcurrent', d.maxConcurrent, 1, 100_000));
    if (spec.name !== undefined && (typeof spec.name !== 'string' || spec.name.length > 200))
      throw new FirmwareError('INVALID', 'name must be text of at most 200 characters');
    const id = randomUUID();
    const targets = this.targets(type, spec);
    if (targets.length === 0) throw new FirmwareError('INVALID', 'the target matches no device');
    // A hash order: the canary is a fair sample, and the same campaign always cuts the same waves.
    const order = targets
      .map((t) => ({ ...t, h: createHash('sha256').update(`${id}\n${t.id}`).digest('hex') }))
      .sort((a, b) => (a.h < b.h ? -1 : 1));
    const ends = (waves as number[]).map((w) => Math.ceil((order.length * w) / 100));
    const devices: CampaignDevice[] = order.map((t, i) => {
      const wave = ends.findIndex((e) => i < e);
      return t.skip
        ? { id: t.id, wave, state: 'SKIPPED', at: now, reason: t.skip }
        : { id: t.id, wave, state: 'PENDING', at: now };
    });
    const c: Campaign = {
      id,
      ...(typeof spec.name === 'string' ? { name: spec.name } : {}),
      type,
      version: artifact.version,
      size: artifact.size,
      sha256: artifact.sha256,
      signature: artifact.signature,
      url: this.opts.downloadUrl(artifact),
      waves: waves as number[],
      soakMs,
      timeoutMs,
      failureThreshold,
      maxConcurrent,
      status: 'RUNNING',
      wave: 0,
      resumedWaves: [],
      createdAt: now,
      updatedAt: now,
      devices,
    };
    this.opts.store.putCampaign(headerOf(c));
    this.opts.store.putDevices(id, devices, true);
    this.index(c);
    this.emitStatus(c, 'RUNNING', 'RUNNING', now, 'created');
    this.step();
    return c;
  }

  /** Continues a PAUSED campaign; the wave that paused it is not checked against the threshold again. */
  resume(id: string): Campaign {
    const l = this.mustGet(id);
    if (l.c.status !== 'PAUSED')
      throw new FirmwareError('CONFLICT', `campaign ${id} is ${l.c.status}, not PAUSED`);
    if (!l.c.resumedWaves.includes(l.c.wave)) l.c.resumedWaves.push(l.c.wave);
    this.setStatus(l, 'RUNNING', 'resumed by the operator');
    this.step();
    return l.c;
  }

  /** Pauses a running campaign by hand (devices in flight are still watched). */
  pause(id: string, reason = 'paused by the operator'): Campaign {
    const l = this.mustGet(id);
    if (l.c.status !== 'RUNNING' && l.c.status !== 'SOAKING')
      throw new FirmwareError('CONFLICT', `campaign ${id} is ${l.c.status}`);
    this.setStatus(l, 'PAUSED', reason);
    return l.c;
  }

  /**
   * Ends a campaign: every device not yet final becomes CANCELED, and the offer is withdrawn from the twins of
   * the devices in flight (`desired.firmware` = null), so that one that has not started does not start.
   */
  abort(id: string, reason = 'aborted by the operator'): Campaign {
    const l = this.mustGet(id);
    if (!this.active(l)) throw new FirmwareError('CONFLICT', `campaign ${id} is already ${l.c.status}`);
    const now = this.opts.clock.now();
    const changed: CampaignDevice[] = [];
    const withdraw: string[] = [];
    for (const d of l.c.devices) {
      if (isFinal(d.state)) continue;
      if (IN_FLIGHT.has(d.state)) withdraw.push(d.id);
      changed.push(this.move(l, d, 'CANCELED', now, reason));
    }
    this.opts.store.putDevices(id, changed, false);
    this.setStatus(l, 'ABORTED', reason);
    for (const deviceId of withdraw) this.patch(deviceId, { firmware: null });
    return l.c;
  }

  private mustGet(id: string): Live {
    const l = this.live.get(id);
    if (!l) throw new FirmwareError('NOT_FOUND', `no campaign ${id}`);
    return l;
  }

  private active(l: Live): boolean {
    return l.c.status !== 'COMPLETED' && l.c.status !== 'ABORTED';
  }

  private targets(type: string, spec: CampaignSpec): { id: string; skip?: string }[] {
    const max = this.opts.maxDevices ?? 100_000;
    if (spec.devices !== undefined) {
      if (spec.where !== undefined)
        throw new FirmwareError('INVALID', 'give either devices or where, not both');
      const ids = spec.devices;
      if (
        !Array.isArray(ids) ||
        ids.length > max ||
        ids.some((i) => typeof i !== 'string' || !isValidDeviceId(i))
      )
        throw new FirmwareError('INVALID', `devices must be a list of at most ${max} device ids`);
      return [...new Set(ids as string[])].map((id) => {
        const dev = this.opts.devices.getDevice(id);
        if (!dev) throw new FirmwareError('INVALID', `device ${id} is not registered`);
        if (dev.type !== type)
          throw new FirmwareError('INVALID', `device ${id} is of type ${dev.type}, not ${type}`);
        return { id, ...this.alreadyThere(id, spec.version as string) };
      });
    }
    const where: unknown = spec.where ?? {};
    if (typeof where !== 'object' || where === null || Array.isArray(where))
      throw new FirmwareError(
        'INVALID',
        'where must be an object of "meta.<key>" or "reported.<path>" to values',
      );
    const conds = Object.entries(where as Record<string, unknown>);
    for (const [path] of conds)
      if (!/^(meta|reported)\.[^.]+(\.[^.]+)*$/.test(path))
        throw new FirmwareError('INVALID', `where key ${path} must start with "meta." or "reported."`);
    const out: { id: string; skip?: string }[] = [];
    for (const dev of this.opts.devices.listDevices({ type })) {
      const reported = conds.some(([p]) => p.startsWith('reported.'))
        ? this.opts.twins.get(dev.id)?.reported.state
        : undefined;
      const match = conds.every(([path, want]) => {
        const [root, ...rest] = path.split('.');
        return valueAt(root === 'meta' ? dev.meta : reported, rest) === want;
      });
      if (!match) continue;
      if (out.length >= max) throw new FirmwareError('INVALID', `the target has more than ${max} devices`);
      out.push({ id: dev.id, ...this.alreadyThere(dev.id, spec.version as string) });
    }
    return out;
  }

  private alreadyThere(id: string, version: string): { skip?: string } {
    return reportedFirmware(this.opts.twins.get(id))?.version === version
      ? { skip: `already runs ${version}` }
      : {};
  }

  private index(c: Campaign): Live {
    const bounds = [0];
    for (let w = 0; w < c.waves.length; w++) {
      let i = bounds[w];
      while (i < c.devices.length && c.devices[i].wave === w) i++;
      bounds.push(i);
    }
    const counts = c.waves.map(
      () => Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as Record<DeviceState, number>,
    );
    const l: Live = { c, bounds, counts, inFlight: new Map(), cursor: bounds[c.wave] };
    for (const d of c.devices) {
      counts[d.wave][d.state]++;
      if (IN_FLIGHT.has(d.state) && this.active(l)) {
        l.inFlight.set(d.id, d);
        this.byDevice.set(d.id, l);
      }
    }
    this.live.set(c.id, l);
    return l;
  }

  private reported(deviceId: string, view: TwinViewLike): void {
    const l = this.byDevice.get(deviceId);
    const d = l?.inFlight.get(deviceId);
    if (!l || !d) return;
    this.apply(l, d, view);
    this.step();
  }

  /** Moves an in-flight device by what its twin reports (`reported.firmware`). */
  private apply(l: Live, d: CampaignDevice, view: TwinViewLike): void {
    const fw = reportedFirmware(view);
    if (!fw) return;
    const now = this.opts.clock.now();
    let to: DeviceState | undefined;
    let reason: string | undefined;
    if (fw.version === l.c.version) to = 'SUCCEEDED';
    else if (fw.campaign === l.c.id) {
      if (fw.state === 'downloading') to = 'DOWNLOADING';
      else if (fw.state === 'installing') to = 'INSTALLING';
      else if (fw.state === 'failed') {
        to = 'FAILED';
        reason = typeof fw.error === 'string' ? fw.error.slice(0, 500) : 'the device reported a failure';
      }
    }
    if (!to || to === d.state || (RANK[to] ?? Infinity) < (RANK[d.state] ?? 0)) return;
    this.opts.store.putDevices(l.c.id, [this.move(l, d, to, now, reason)], false);
  }

  private move(l: Live, d: CampaignDevice, to: DeviceState, now: number, reason?: string): CampaignDevice {
    const from = d.state;
    const counts = l.counts[d.wave];
    counts[from]--;
    counts[to]++;
    d.state = to;
    d.at = now;
    if (reason !== undefined) d.reason = reason;
    else delete d.reason;
    if (to === 'NOTIFIED') d.notifiedAt = now;
    if (IN_FLIGHT.has(to)) {
      l.inFlight.set(d.id, d);
      this.byDevice.set(d.id, l);
    } else if (l.inFlight.delete(d.id)) this.byDevice.delete(d.id);
    this.emit('device', {
      campaign: l.c.id,
      deviceId: d.id,
      wave: d.wave,
      from,
      to,
      at: now,
      ...(reason ? { reason } : {}),
    });
    return d;
  }

  /** Brings every active campaign forward: timeouts, the threshold, notifications, wave ends, soak ends. */
  private step(): void {
    if (this.closed) return;
    const now = this.opts.clock.now();
    let next = Infinity;
    for (const l of this.live.values()) {
      if (!this.active(l)) continue;
      const timedOut: CampaignDevice[] = [];
      for (const d of l.inFlight.values())
        if (now >= (d.notifiedAt ?? d.at) + l.c.timeoutMs) timedOut.push(d);
      const moved = timedOut.map((d) =>
        this.move(l, d, 'TIMED_OUT', now, `no new version within ${l.c.timeoutMs / 1000} s`),
      );
      this.opts.store.putDevices(l.c.id, moved, false);
      this.advance(l, now);
      for (const d of l.inFlight.values()) next = Math.min(next, (d.notifiedAt ?? d.at) + l.c.timeoutMs);
      if (l.c.status === 'SOAKING' && l.c.soakUntil !== undefined) next = Math.min(next, l.c.soakUntil);
    }
    this.arm(next);
  }

  private advance(l: Live, now: number): void {
    for (;;) {
      const c = l.c;
      if (c.status === 'SOAKING') {
        if (now < (c.soakUntil ?? 0)) return;
        c.wave++;
        delete c.soakUntil;
        l.cursor = l.bounds[c.wave];
        this.setStatus(l, 'RUNNING', `wave ${c.wave} starts`);
      }
      if (c.status !== 'RUNNING') return;
      const counts = l.counts[c.wave];
      const size = l.bounds[c.wave + 1] - l.bounds[c.wave] - counts.SKIPPED;
      const failed = counts.FAILED + counts.TIMED_OUT;
      if (!c.resumedWaves.includes(c.wave) && size > 0 && failed / size > c.failureThreshold) {
        this.setStatus(
          l,
          'PAUSED',
          `wave ${c.wave}: ${failed} of ${size} devices failed or timed out (threshold ${c.failureThreshold * 100} %)`,
        );
        return;
      }
      this.notify(l, now);
      const open = counts.PENDING + counts.NOTIFIED + counts.DOWNLOADING + counts.INSTALLING;
      if (open > 0) return;
      if (c.wave === c.waves.length - 1) {
        this.setStatus(l, 'COMPLETED', 'every wave is done');
        return;
      }
      c.soakUntil = now + c.soakMs;
      this.setStatus(l, 'SOAKING', `wave ${c.wave} done; wave ${c.wave + 1} after the soak time`);
    }
  }

  /** Notifies PENDING devices of the current wave while there is room; NOTIFIED is durable before any is told. */
  private notify(l: Live, now: number): void {
    const c = l.c;
    const end = l.bounds[c.wave + 1];
    const batch: CampaignDevice[] = [];
    const skipped: CampaignDevice[] = [];
    while (l.inFlight.size < c.maxConcurrent && l.cursor < end) {
      const d = c.devices[l.cursor++];
      if (d.state !== 'PENDING') continue;
      const dev = this.opts.devices.getDevice(d.id);
      const skip = !dev
        ? 'no longer registered'
        : dev.type !== c.type
          ? `now of type ${dev.type}`
          : this.alreadyThere(d.id, c.version).skip;
      if (skip) skipped.push(this.move(l, d, 'SKIPPED', now, skip));
      else batch.push(this.move(l, d, 'NOTIFIED', now));
    }
    this.opts.store.putDevices(c.id, [...skipped, ...batch], true);
    if (batch.length === 0) return;
    const tellAll = (): void => {
      for (const d of batch) this.tell(l, d);
    };
    if (this.opts.twins.batch) this.opts.twins.batch(tellAll);
    else tellAll();
  }

  private tell(l: Live, d: CampaignDevice): void {
    const c = l.c;
    const offer: FirmwareOffer = {
      version: c.version,
      url: c.url,
      size: c.size,
      sha256: c.sha256,
      signature: c.signature,
      campaign: c.id,
    };
    const err = this.patch(d.id, { firmware: offer });
    if (err)
      this.opts.store.putDevices(
        c.id,
        [this.move(l, d, 'FAILED', this.opts.clock.now(), `not notified: ${err}`)],
        false,
      );
  }

  private patch(deviceId: string, patch: Record<string, unknown>): string | undefined {
    try {
      this.opts.twins.patchDesired(deviceId, patch);
      return undefined;
    } catch (err) {
      const e = err as { reason?: string; message?: string };
      if (this.listenerCount('error') > 0) this.emit('error', err as Error);
      return e.reason ?? e.message ?? String(err);
    }
  }

  private carriesOffer(view: TwinViewLike | undefined, c: CampaignHeader): boolean {
    const fw = view?.desired.state.firmware as Partial<FirmwareOffer> | null | undefined;
    return fw?.campaign === c.id && fw.version === c.version;
  }

  private setStatus(l: Live, to: CampaignStatus, reason: string): void {
    const c = l.c;
    const from = c.status;
    const now = this.opts.clock.now();
    c.status = to;
    c.reason = reason;
    c.updatedAt = now;
    if (!this.active(l)) {
      for (const id of l.inFlight.keys()) this.byDevice.delete(id);
      l.inFlight.clear();
    }
    this.opts.store.putCampaign(headerOf(c));
    this.emitStatus(c, from, to, now, reason);
  }

  private emitStatus(
    c: Campaign,
    from: CampaignStatus,
    to: CampaignStatus,
    at: number,
    reason: string,
  ): void {
    this.emit('status', { campaign: c.id, from, to, wave: c.wave, at, reason });
  }

  private arm(due: number): void {
    if (due === this.timerDue) return;
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = due;
    if (due === Infinity) return;
    this.timer = this.opts.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.timerDue = Infinity;
        this.step();
      },
      Math.max(0, due - this.opts.clock.now()),
    );
  }
}

export interface CampaignSummary extends CampaignHeader {
  devices: number;
  waveProgress: { wave: number; percent: number; devices: number; counts: Record<DeviceState, number> }[];
}

/** `reported.firmware` of a twin, when it is an object. */
export function reportedFirmware(
  view: TwinViewLike | undefined,
): { version?: unknown; state?: unknown; campaign?: unknown; error?: unknown } | undefined {
  const fw = view?.reported.state.firmware;
  return typeof fw === 'object' && fw !== null ? fw : undefined;
}

function headerOf({ devices: _devices, ...header }: Campaign): CampaignHeader {
  return header;
}

function valueAt(obj: unknown, path: string[]): unknown {
  let v = obj;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}
