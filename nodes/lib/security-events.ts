import { counter } from './metrics';

/**
 * What a security event records. Stored in `device_events` next to presence events; counted in
 * `iotb_security_events_total{event}`. Never carries a secret (no token, no password, no key).
 */
export type SecurityEventKind =
  | 'auth_failure'
  | 'lockout'
  | 'rate_limited'
  | 'acl_denied'
  | 'limit_exceeded'
  /** A publication the backend could not take (e.g. a twin report that is not a JSON object). */
  | 'invalid_payload'
  | 'revoked'
  | 'disabled'
  | 'enabled'
  | 'token_rotated'
  | 'removed'
  | 'registered';

export interface SecurityEvent {
  event: SecurityEventKind;
  /** The device id the attempt claimed (may not exist) or the device acted on. */
  deviceId?: string;
  /** Remote address of the attempt, when there is one. */
  ip?: string;
  /** 'mqtt' | 'http' | 'registry'. */
  source: string;
  /** A stable, machine-readable reason, e.g. 'bad_credentials', 'client_id_mismatch'. */
  reason: string;
  at: number;
  /** For aggregated events (e.g. connects refused by rate limit): how many since the last event. */
  count?: number;
}

const securityEventsTotal = counter(
  'iotb_security_events_total',
  'Security events (authentication failures, lockouts, ACL denials, revocations), by event',
  ['event'] as const,
);

/** Builds a security event and counts it. */
export function securityEvent(
  event: SecurityEventKind,
  source: string,
  reason: string,
  deviceId?: string,
  ip?: string,
): SecurityEvent {
  securityEventsTotal.labels(event).inc();
  const ev: SecurityEvent = { event, source, reason, at: Date.now() };
  if (deviceId !== undefined) ev.deviceId = deviceId;
  if (ip !== undefined) ev.ip = ip;
  return ev;
}
