/**
 * Device twins over MQTT: the desired document goes to a device's twin/desired topic when it subscribes there
 * (or a persistent session restores that subscription) and after each change; its twin/reported publications
 * are merged into the twin.
 */
import { securityEvent, type SecurityEvent } from '../security-events';
import { TwinError, type TwinService, type TwinView } from '../twin/twin-service';
import type { DeviceLinkOut } from './device-link';
import type { Session } from './session';

export class TwinLink {
  constructor(
    readonly twins: TwinService,
    private readonly link: DeviceLinkOut,
    private readonly security: (ev: SecurityEvent) => void,
    /** A report that could not be stored (not the device's fault). */
    private readonly error: (err: Error) => void,
  ) {}

  /**
   * The device's full desired document (`{ state, version, updatedAt }`) to its twin/desired topic, QoS 1,
   * when it is connected and subscribed there. Not retained: the broker sends the current document itself
   * whenever the device (re)subscribes.
   */
  readonly sendDesired = (deviceId: string, view: TwinView | undefined = this.twins.get(deviceId)): void => {
    if (!view || !this.link.isSubscribed(deviceId, (s) => s.desiredTopic)) return;
    const { state, version, updatedAt } = view.desired;
    this.link
      .publishToDevice(deviceId, 'twin/desired', JSON.stringify({ state, version, updatedAt }), { qos: 1 })
      .catch(() => undefined); // the broker closed meanwhile: the device gets it on its next subscribe
  };

  /** A device's twin/reported publication, merged; a refused one is counted and becomes a security event. */
  mergeReported(s: Session, payload: Buffer): void {
    let patch: unknown;
    try {
      patch = JSON.parse(payload.toString('utf8'));
    } catch {
      patch = undefined; // mergeReported refuses it with INVALID and counts it
    }
    try {
      this.twins.mergeReported(s.device.id, patch);
    } catch (err) {
      if (!(err instanceof TwinError)) {
        // The twin file could not be written (e.g. disk full): the report is lost, the device repeats it on
        // its next connect; say so rather than crash the process from inside the MQTT stack.
        const message = err instanceof Error ? err.message : String(err);
        this.error(new Error(`twin report of ${s.device.id} not stored: ${message}`));
        return;
      }
      const kind = err.code === 'TOO_LARGE' ? 'limit_exceeded' : 'invalid_payload';
      const reason =
        patch === undefined ? 'twin_reported_not_json' : `twin_reported_${err.code.toLowerCase()}`;
      this.security(securityEvent(kind, 'mqtt', reason, s.device.id, s.ip));
    }
  }
}
