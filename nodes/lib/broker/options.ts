/** What a DeviceBroker is configured with: its limits, its listeners, its collaborators. */
import type { Registry } from '../registry/registry';
import type { TwinService } from '../twin/twin-service';
import type { AckGateOptions } from './ack-gate';

export interface BrokerLimits {
  /** Largest MQTT packet accepted (bytes, fixed header included); checked before the body is buffered. */
  maxPacketBytes: number;
  /** Open connections at most (all listeners together). */
  maxConnections: number;
  /** New connections per second per remote address (0: unlimited) and the burst allowed. */
  connectRatePerIp: number;
  connectBurstPerIp: number;
  /**
   * A connection over its address's rate waits up to this long (ms) for its turn instead of being dropped at
   * once (0: dropped): in a reconnect storm devices are served in order instead of retrying blindly.
   */
  connectQueueMs: number;
  /** Failed CONNECTs for one device id from one address before it is locked out. */
  lockoutThreshold: number;
  /** First lockout (ms), doubled per further failure up to `lockoutMaxMs`. */
  lockoutBaseMs: number;
  lockoutMaxMs: number;
  /** Largest keepalive (s) a client may ask for; 0 (no keepalive) is refused when this is set. */
  keepaliveLimitS: number;
  /** Time a new connection has to send CONNECT (ms). */
  connectTimeoutMs: number;
  /** Longest topic (characters) and most levels a PUBLISH/SUBSCRIBE topic may have. */
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Entries kept for rate limits and lockouts (bounded memory under floods). */
  maxTrackedKeys: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketBytes: 256 * 1024,
  maxConnections: 10_000,
  // 1,000 devices behind one address (a NAT, a gateway) back within ≈ 3 s of a restart (400 at once, then
  // 200/s); a wrong token is still stopped by the per-device lockout, not by this limit.
  connectRatePerIp: 200,
  connectBurstPerIp: 400,
  connectQueueMs: 2000,
  lockoutThreshold: 5,
  lockoutBaseMs: 1000,
  lockoutMaxMs: 5 * 60_000,
  keepaliveLimitS: 1200,
  connectTimeoutMs: 10_000,
  maxTopicLength: 256,
  maxTopicLevels: 8,
  maxTrackedKeys: 10_000,
};

export interface ListenOptions {
  host: string;
  port: number;
  /** PEM cert/key (and optional CA): the MQTT listener speaks TLS. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** MQTT over WebSocket on its own port (TLS not applied; put a reverse proxy in front for wss). */
  ws?: { host: string; port: number; path: string };
  /** Listen without TLS on an address other machines reach (refused unless set: tokens would travel in clear). */
  allowPlaintext?: boolean;
}

/** True for an address only this machine reaches (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The listeners of `opts` that would carry device tokens unencrypted beyond this machine, as URLs. */
export function plaintextBeyondLoopback(opts: ListenOptions): string[] {
  const exposed: string[] = [];
  if (!opts.tls && !isLoopbackHost(opts.host)) exposed.push(`mqtt://${opts.host}:${opts.port}`);
  if (opts.ws && !isLoopbackHost(opts.ws.host)) exposed.push(`ws://${opts.ws.host}:${opts.ws.port}`);
  return exposed;
}

export interface BrokerOptions {
  registry: Registry;
  /** First topic level, default 'devices'. */
  topicPrefix?: string;
  limits?: Partial<BrokerLimits>;
  /** Bound on held (unacknowledged) readings and the ack timeout; see ack-gate.ts. */
  acks?: Partial<AckGateOptions>;
  /**
   * Device twins: each device may subscribe to its own `twin/desired` (it gets the full desired document on
   * subscribe and after each change) and publish to its own `twin/reported` (merged). Without it, neither.
   */
  twins?: TwinService;
}
