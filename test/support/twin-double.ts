/**
 * TEST DOUBLE of the twin service's contract (nodes/lib/twin/twin-service.ts) as the firmware campaign engine
 * uses it: get, patchDesired (RFC 7386 merge, version + 1), the 'reported' event. For unit tests of the
 * campaign state machine only; the real-runtime tests use the real twin service over the embedded broker.
 */
import { EventEmitter } from 'node:events';
import type { FirmwareTwins, TwinViewLike } from '../../nodes/lib/firmware/campaign';

export class TwinDouble extends EventEmitter implements FirmwareTwins {
  readonly views = new Map<string, TwinViewLike>();
  /** Calls of patchDesired per device: "notified exactly once" is asserted on this. */
  readonly patches = new Map<string, Record<string, unknown>[]>();
  /** Devices whose patchDesired throws (as the service does for an unknown device). */
  readonly refuse = new Set<string>();

  get(deviceId: string): TwinViewLike | undefined {
    return this.views.get(deviceId);
  }

  patchDesired(deviceId: string, patch: Record<string, unknown>): TwinViewLike {
    if (this.refuse.has(deviceId))
      throw Object.assign(new Error('unknown device'), { reason: 'unknown device' });
    const v = this.view(deviceId);
    v.desired = { state: merge(v.desired.state, patch), version: v.desired.version + 1 };
    this.patches.set(deviceId, [...(this.patches.get(deviceId) ?? []), patch]);
    return v;
  }

  /** The device reports (merge) and the service announces it. */
  report(deviceId: string, patch: Record<string, unknown>): void {
    const v = this.view(deviceId);
    v.reported = { state: merge(v.reported.state, patch), version: v.reported.version + 1 };
    this.emit('reported', deviceId, v, patch);
  }

  private view(deviceId: string): TwinViewLike {
    let v = this.views.get(deviceId);
    if (!v) {
      v = { deviceId, desired: { state: {}, version: 0 }, reported: { state: {}, version: 0 } };
      this.views.set(deviceId, v);
    }
    return v;
  }
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(target)) if (patch[k] !== null) out[k] = v;
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) continue;
    if (typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' && out[k] !== null)
      out[k] = merge(out[k] as Record<string, unknown>, v as Record<string, unknown>);
    else out[k] = v;
  }
  return out;
}
