import { createHmac } from 'node:crypto';
import type { DeviceRecord } from '../device-contracts';
import { isValidDeviceId } from '../device-id';
import { digestsEqual } from '../registry/credentials';
import type { Registry } from '../registry/registry';
import { securityEvent } from '../security-events';
import { RateLimiter } from '../broker/limits';
import { NonceCache } from './nonce-cache';

/**
 * How iotb-auth decides who sent a message:
 * - 'bearer': HTTP `Authorization: Bearer <device token>`.
 * - 'signed': HTTP body signed with the device's signing key, with timestamp and nonce (replay-proof).
 * - 'apiKey': HTTP `Authorization: Bearer <operator API key>` (the operator API).
 * - 'topic': MQTT from an external broker that already authenticated the device; the device id in the
 *   topic is trusted. Only for a broker whose ACLs you control.
 */
export type AuthMode = 'bearer' | 'signed' | 'apiKey' | 'topic';

export const SIGNATURE_HEADERS = {
  device: 'x-iotb-device',
  timestamp: 'x-iotb-timestamp',
  nonce: 'x-iotb-nonce',
  signature: 'x-iotb-signature',
} as const;

const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

export interface AuthRequest {
  headers?: Record<string, string | string[] | undefined>;
  /** The body exactly as signed (signed mode). */
  body?: string | Buffer;
  /** MQTT topic (topic mode). */
  topic?: string;
  /** When the route names a device (e.g. /api/devices/:id/telemetry), the credentials must be that device's. */
  deviceId?: string;
  ip?: string;
}

export type AuthOutcome =
  | { ok: true; device?: DeviceRecord; apiKeyId?: string }
  | { ok: false; status: 401 | 403 | 429; code: string; reason: string };

export interface AuthenticatorOptions {
  mode: AuthMode;
  /** Accepted clock difference for signed requests (ms), default ±300 s. */
  windowMs?: number;
  /** Nonces remembered at most (bounded memory), default 100k. */
  maxNonces?: number;
  /** First topic level in topic mode, default 'devices'. */
  topicPrefix?: string;
  /** Authenticated requests per second per device (burst twice that); 0 or absent: unlimited. */
  ratePerDeviceS?: number;
  now?: () => number;
}

/** The one answer for unknown device, wrong token, bad signature: nothing tells a guesser which it was. */
const UNAUTHORIZED = Object.freeze({
  ok: false,
  status: 401,
  code: 'UNAUTHORIZED',
  reason: 'missing or invalid credentials',
} as const);

export class Authenticator {
  private readonly windowMs: number;
  private readonly nonces: NonceCache;
  private readonly now: () => number;
  /** `devices/`: the topic level before the device id, with its separator (built once: checked per reading). */
  private readonly topicHead: string;
  private readonly rate: RateLimiter | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly opts: AuthenticatorOptions,
  ) {
    this.windowMs = opts.windowMs ?? 300_000;
    this.now = opts.now ?? Date.now;
    this.nonces = new NonceCache(2 * this.windowMs, opts.maxNonces ?? 100_000, this.now);
    this.topicHead = `${opts.topicPrefix ?? 'devices'}/`;
    const rate = opts.ratePerDeviceS ?? 0;
    // Counted after authentication, so a stranger cannot use up a device's allowance.
    this.rate = rate > 0 ? new RateLimiter(rate, 2 * rate, 100_000, this.now) : undefined;
  }

  authenticate(req: AuthRequest): AuthOutcome {
    const outcome = this.check(req);
    if (outcome.ok && outcome.device && this.rate && !this.rate.take(outcome.device.id))
      return {
        ok: false,
        status: 429,
        code: 'RATE_LIMITED',
        reason: `device ${outcome.device.id} sends more than ${this.opts.ratePerDeviceS} requests per second`,
      };
    return outcome;
  }

  private check(req: AuthRequest): AuthOutcome {
    switch (this.opts.mode) {
      case 'bearer':
        return this.bearer(req);
      case 'signed':
        return this.signed(req);
      case 'apiKey':
        return this.apiKey(req);
      case 'topic':
        return this.topic(req);
    }
  }

  private bearer(req: AuthRequest): AuthOutcome {
    const token = bearerToken(req.headers);
    if (!token) return this.fail('no_credentials', req);
    const r = this.registry.authenticateToken(token);
    if (!r.ok) {
      if (r.reason === 'disabled') return this.disabled(req);
      return this.fail(r.reason, req);
    }
    if (req.deviceId !== undefined && req.deviceId !== r.device.id)
      return this.fail('device_mismatch', req, r.device.id);
    return { ok: true, device: r.device };
  }

  /**
   * Signature = hex(HMAC-SHA-256(signing key, `${timestamp}.${nonce}.${body}`)), timestamp in ms since
   * epoch within ±window, nonce 16-64 url-safe characters, never reused within the window.
   */
  private signed(req: AuthRequest): AuthOutcome {
    const id = header(req.headers, SIGNATURE_HEADERS.device);
    const ts = header(req.headers, SIGNATURE_HEADERS.timestamp);
    const nonce = header(req.headers, SIGNATURE_HEADERS.nonce);
    const sig = header(req.headers, SIGNATURE_HEADERS.signature);
    if (!id || !ts || !nonce || !sig || !isValidDeviceId(id)) return this.fail('no_credentials', req);
    if (req.deviceId !== undefined && req.deviceId !== id) return this.fail('device_mismatch', req, id);
    const t = Number(ts);
    if (!/^\d{1,16}$/.test(ts) || Math.abs(this.now() - t) > this.windowMs)
      return this.fail('stale_timestamp', req, id, {
        code: 'STALE',
        reason: 'request timestamp outside the accepted window',
      });
    if (!NONCE_PATTERN.test(nonce)) return this.fail('bad_nonce', req, id);
    const keys = this.registry.signingKeys(id);
    const given = /^[0-9a-f]{64}$/i.test(sig) ? Buffer.from(sig, 'hex') : Buffer.alloc(0);
    const body = req.body === undefined ? '' : req.body;
    let match = false;
    for (const k of keys ?? []) {
      const expected = createHmac('sha256', k).update(`${ts}.${nonce}.`).update(body).digest();
      if (digestsEqual(expected, given)) match = true;
    }
    if (!match) {
      const device = keys?.length === 0 ? this.registry.getDevice(id) : undefined;
      if (device && !device.enabled) return this.fail('disabled_or_revoked', req, id);
      return this.fail(keys ? 'bad_signature' : 'unknown_device', req, id);
    }
    // Only a correctly signed request may use up a nonce, so nobody can burn a device's nonces.
    if (!this.nonces.add(`${id}:${nonce}`))
      return this.fail('replayed', req, id, {
        code: 'REPLAYED',
        reason: 'request was already received (replay)',
      });
    const device = this.registry.getDevice(id);
    if (!device) return this.fail('unknown_device', req, id);
    return { ok: true, device };
  }

  private apiKey(req: AuthRequest): AuthOutcome {
    const key = bearerToken(req.headers);
    const id = key ? this.registry.verifyApiKey(key) : undefined;
    if (id === undefined) return this.fail(key ? 'bad_api_key' : 'no_credentials', req);
    return { ok: true, apiKeyId: id };
  }

  private topic(req: AuthRequest): AuthOutcome {
    const t = req.topic ?? '';
    const head = this.topicHead;
    const end = t.indexOf('/', head.length);
    const id = t.startsWith(head) ? t.slice(head.length, end < 0 ? t.length : end) : '';
    const device = isValidDeviceId(id) ? this.registry.getDevice(id) : undefined;
    if (!device)
      return this.fail('unknown_device', req, isValidDeviceId(id) ? id : undefined, {
        code: 'UNKNOWN_DEVICE',
        reason: 'topic does not name a registered device',
      });
    if (!device.enabled) return this.disabled(req, id);
    // The external broker checked the device's broker credentials; a revoke in the registry still counts.
    if (!this.registry.hasCredentials(id))
      return this.fail('revoked', req, id, {
        code: 'DEVICE_REVOKED',
        reason: "the device's credentials were revoked",
      });
    return { ok: true, device };
  }

  private disabled(req: AuthRequest, id?: string): AuthOutcome {
    this.registry.reportSecurity(securityEvent('auth_failure', this.channel(), 'disabled', id, req.ip));
    return { ok: false, status: 403, code: 'DEVICE_DISABLED', reason: 'the device is disabled' };
  }

  /** Security event for `reason`; the caller sees UNAUTHORIZED unless `refusal` may tell it more. */
  private fail(
    reason: string,
    req: AuthRequest,
    deviceId?: string,
    refusal?: { code: string; reason: string },
  ): AuthOutcome {
    this.registry.reportSecurity(securityEvent('auth_failure', this.channel(), reason, deviceId, req.ip));
    return refusal ? { ...UNAUTHORIZED, ...refusal } : UNAUTHORIZED;
  }

  private channel(): 'mqtt' | 'http' {
    return this.opts.mode === 'topic' ? 'mqtt' : 'http';
  }
}

function header(headers: AuthRequest['headers'], name: string): string | undefined {
  const v = headers?.[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), if any. */
export function bearerToken(headers: AuthRequest['headers']): string | undefined {
  const v = header(headers, 'authorization');
  if (!v) return undefined;
  const m = /^Bearer[ ]+([\x21-\x7e]{1,512})\s*$/i.exec(v);
  return m ? m[1] : undefined;
}

/** Signs a body the way a device does (for device SDKs, tests and the simulator flow). */
export function signBody(
  signingKey: Buffer,
  timestamp: number,
  nonce: string,
  body: string | Buffer,
): string {
  return createHmac('sha256', signingKey).update(`${timestamp}.${nonce}.`).update(body).digest('hex');
}
