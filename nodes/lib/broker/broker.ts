import { EventEmitter, once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { Aedes, AedesOptions, AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { DeviceLink, DeviceLinkEvents, DeviceMessage, DeviceRecord } from '../device-contracts';
import type { DeviceRef } from '../device-id';
import { isValidDeviceId } from '../device-id';
import { counter, gauge } from '../metrics';
import type { Registry } from '../registry/registry';
import { securityEvent, type SecurityEvent } from '../security-events';
import { TwinError, type TwinService, type TwinView } from '../twin/twin-service';
import { AckGate, type AckGateOptions, type AckGateStats } from './ack-gate';
import { FrameGuard, PacketTooLargeError } from './frame-guard';
import { Lockout, RateLimiter } from './limits';

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

/** What the iotb-broker config node offers: `RED.nodes.getNode(config.broker).broker` (a DeviceLink). */
export interface BrokerHolder {
  /** Undefined when the node has no usable registry or TLS files. */
  broker?: DeviceBroker;
  /** The device twins this broker serves (docs/twin.md); undefined when the twin file could not be opened. */
  twins?: TwinService;
}

export type BrokerState = 'starting' | 'listening' | 'failed' | 'closed';

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

export interface Presence {
  online: boolean;
  /** Last CONNECT, PUBLISH or PINGREQ (ms since epoch). */
  lastSeen: number;
  connectedAt?: number;
  ip?: string;
}

/** A connection event for iotb-device-in's second output and the `device_events` measurement. */
export interface ConnectionEvent {
  event: 'connected' | 'disconnected';
  deviceId: string;
  ip?: string;
  at: number;
}

interface Session {
  device: DeviceRecord;
  /** Hash of the token this session authenticated with: it ends when that token expires. */
  credential: string;
  ip: string;
  publishTopics: readonly string[];
  commandsTopic: string;
  /** Undefined without twins. */
  desiredTopic: string | undefined;
  prefixLength: number;
  /** QoS granted on the commands topic (0 also when not subscribed). */
  commandsQos: number;
  clean: boolean;
  /** Our QoS 1 publications to a clean session, in order, until its PUBACKs arrive (bounded). */
  awaitingAck: { topic: string; payload: Buffer }[];
}

const MAX_AWAITING_ACK = 1000;

const refusedTotal = counter(
  'iotb_broker_refused_total',
  'Connections and CONNECTs the embedded broker refused, by reason',
  ['reason'] as const,
);
const connectionsGauge = gauge('iotb_broker_connections', 'Open connections to the embedded broker');
const messagesTotal = counter(
  'iotb_broker_messages_total',
  'Messages devices published through the broker, by kind',
  ['kind'] as const,
);

// TypeScript turns import() into require() for CommonJS output, and aedes 1.x is an ES module that
// require() loads only on Node >= 20.19: a real dynamic import works on every supported Node.
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

/** aedes keeps a client's live subscriptions on `client.subscriptions` (not in its typings). */
function hasSubscription(client: Client, topic: string): boolean {
  const subs = (client as Client & { subscriptions?: Record<string, unknown> }).subscriptions;
  return subs?.[topic] !== undefined;
}

function refusal(returnCode: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode });
}

/** What a DeviceBroker emits: the `DeviceLink` events, plus its own. */
export interface BrokerEvents extends DeviceLinkEvents {
  connection: [event: ConnectionEvent];
  security: [event: SecurityEvent];
  state: [state: BrokerState];
  /** Only for listener failures. */
  error: [error: Error];
}

/**
 * The embedded MQTT broker (aedes): authenticates each CONNECT against the registry (username = device id,
 * password = token, client id = device id), confines each device to its own topics, enforces the limits,
 * tracks presence, and implements `DeviceLink` for command dispatch. Events in `BrokerEvents`.
 */
export class DeviceBroker extends EventEmitter<BrokerEvents> implements DeviceLink {
  readonly limits: BrokerLimits;
  readonly topicPrefix: string;
  private aedes!: Aedes;
  private readonly registry: Registry;
  private readonly servers: (NetServer | HttpServer)[] = [];
  private wss: WebSocketServer | undefined;
  private readonly rawSockets = new Set<Socket>();
  /** Connections waiting for their turn under the per-address rate, with their timers. */
  private readonly queued = new Map<Duplex, NodeJS.Timeout>();
  private readonly connections = new Set<Duplex>();
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly ipOf = new WeakMap<Client, string>();
  private readonly willTopicOf = new WeakMap<Client, string>();
  private readonly live = new Map<string, Client>();
  private readonly presence = new Map<string, Presence>();
  private readonly rate: RateLimiter;
  private readonly lockout: Lockout;
  private readonly acks: AckGate;
  private readonly twins: TwinService | undefined;
  private readonly onDesired = (deviceId: string, view: TwinView): void => this.sendDesired(deviceId, view);
  /** Kinds whose QoS 1 PUBACK waits until the flow stored them, with how many nodes take them. */
  private readonly storedKinds = new Map<string, number>();
  /** Payloads of publications already handed to the flow with a held ack: aedes' 'publish' skips them. */
  private readonly handedOver = new WeakSet<Buffer>();
  private rateLimitedSinceEvent = 0;
  private lastRateLimitEvent = 0;
  private closing: Promise<void> | undefined;
  private aedesClosed = false;
  private started = false;
  private currentState: BrokerState = 'starting';
  private readonly onRevoked = (id: string): void => this.disconnect(id);
  private readonly onRemoved = (id: string): void => void this.presence.delete(id);
  private readonly onRegistrySecurity = (ev: SecurityEvent): void => this.emitSecurity(ev);
  /** Devices whose previous token expires at the given time; their sessions are re-checked then. */
  private readonly expiring = new Map<string, number>();
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly onRotated = (id: string, previousExpiresAt?: number): void => {
    if (previousExpiresAt === undefined) return this.endIfCredentialDead(id);
    this.expiring.set(id, previousExpiresAt);
    this.expiryTimer ??= setInterval(() => this.sweepExpired(), 1000).unref();
  };

  /** Creates the broker without listening: `start` opens the listeners (nodes can hold it meanwhile). */
  constructor(opts: BrokerOptions) {
    super();
    this.registry = opts.registry;
    this.topicPrefix = opts.topicPrefix ?? 'devices';
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const l = this.limits;
    this.rate = new RateLimiter(l.connectRatePerIp, l.connectBurstPerIp, l.maxTrackedKeys);
    this.lockout = new Lockout(l.lockoutThreshold, l.lockoutBaseMs, l.lockoutMaxMs, l.maxTrackedKeys);
    this.acks = new AckGate(opts.acks);
    this.twins = opts.twins;
  }

  /** Creates a broker and starts it. */
  static async start(opts: BrokerOptions, listen: ListenOptions): Promise<DeviceBroker> {
    const broker = new DeviceBroker(opts);
    await broker.start(listen);
    return broker;
  }

  /**
   * Starts aedes and the listeners; rejects (with everything closed again) e.g. when a port is taken, or when a
   * listener would be reachable from the network without TLS and `allowPlaintext` is not set.
   */
  async start(listen: ListenOptions): Promise<void> {
    try {
      const exposed = plaintextBeyondLoopback(listen);
      if (exposed.length > 0 && !listen.allowPlaintext)
        throw new Error(
          `refusing to listen without TLS beyond this machine (${exposed.join(', ')}): device tokens would ` +
            'cross the network in clear text. Give a TLS certificate and key, listen on 127.0.0.1, or allow ' +
            'plain MQTT explicitly',
        );
      await this.init();
      if (this.closing) {
        // Closed while aedes was being created: shutdown found no aedes to close, so its timers live on.
        if (!this.aedesClosed) await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
        throw new Error('the broker was closed while starting');
      }
      await this.listen(listen);
      this.setState('listening');
    } catch (err) {
      this.setState('failed');
      await this.close();
      throw err;
    }
  }

  /** 'starting' -> 'listening' | 'failed' -> 'closed' ('failed' stays); emitted as 'state'. */
  get state(): BrokerState {
    return this.currentState;
  }

  private setState(state: BrokerState): void {
    if (this.currentState === state || this.currentState === 'failed') return;
    this.currentState = state;
    this.emit('state', state);
  }

  /** True once the listeners accept connections, until `close`. */
  get running(): boolean {
    return this.started && !this.closing;
  }

  // ---- DeviceLink ----

  isOnline(deviceId: string): boolean {
    return this.live.has(deviceId);
  }

  isSubscribed(deviceId: string): boolean {
    const client = this.live.get(deviceId);
    const s = client && this.sessions.get(client);
    return s !== undefined && hasSubscription(client!, s.commandsTopic);
  }

  publishToDevice(
    deviceId: string,
    subtopic: string,
    payload: Buffer | string,
    opts: { qos: 0 | 1 },
  ): Promise<void> {
    if (!isValidDeviceId(deviceId))
      return Promise.reject(new Error(`device id "${String(deviceId)}" is not valid`));
    if (!this.running) return Promise.reject(new Error('the broker is not running'));
    const packet: PublishPacket = {
      cmd: 'publish',
      topic: `${this.topicPrefix}/${deviceId}/${subtopic}`,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos: opts.qos,
      retain: false,
      dup: false,
    };
    const client = this.live.get(deviceId);
    const s = client && this.sessions.get(client);
    if (s && s.clean && opts.qos === 1 && s.commandsQos === 1 && packet.topic === s.commandsTopic) {
      if (s.awaitingAck.length >= MAX_AWAITING_ACK) s.awaitingAck.shift();
      s.awaitingAck.push({ topic: packet.topic, payload: packet.payload as Buffer });
    }
    return new Promise((resolve, reject) =>
      this.aedes.publish(packet, (err) => (err ? reject(err) : resolve())),
    );
  }

  // ---- presence and state ----

  getPresence(deviceId: string): Presence {
    return this.presence.get(deviceId) ?? { online: false, lastSeen: 0 };
  }

  /** Counters for status and health: open connections, online devices, tracked limiter entries, held acks. */
  stats(): {
    connections: number;
    online: number;
    trackedAddresses: number;
    trackedLockouts: number;
    acks: AckGateStats;
  } {
    return {
      connections: this.connections.size,
      online: this.live.size,
      trackedAddresses: this.rate.size,
      trackedLockouts: this.lockout.size,
      acks: this.acks.stats(),
    };
  }

  /**
   * A node that stores these kinds (iotb-device-in) takes their acknowledgements: from now on a QoS 1
   * publication of such a kind is PUBACKed only when the ack ledger settles the `ackId` it carries in the
   * 'message' event. The returned function gives them back (node closing): the readings held then are not
   * acknowledged, and their connections are closed so the devices send them again.
   */
  takeAcks(kinds: readonly string[]): () => void {
    for (const k of kinds) this.storedKinds.set(k, (this.storedKinds.get(k) ?? 0) + 1);
    let taken = true;
    return () => {
      if (!taken) return;
      taken = false;
      for (const k of kinds) {
        const n = (this.storedKinds.get(k) ?? 1) - 1;
        if (n > 0) this.storedKinds.set(k, n);
        else this.storedKinds.delete(k);
      }
      this.acks.releaseAll();
    };
  }

  /** The registered device (for `msg.device`), undefined when it is not (or no longer) registered. */
  deviceRefOf(deviceId: string): DeviceRef | undefined {
    return this.registry.getDevice(deviceId);
  }

  /** A session whose token stopped verifying (rotation grace over) is closed like a revoked one. */
  private endIfCredentialDead(id: string): void {
    const client = this.live.get(id);
    const s = client && this.sessions.get(client);
    if (s && !this.registry.isCredentialLive(id, s.credential)) client.close();
  }

  private sweepExpired(): void {
    const now = this.registry.time();
    for (const [id, at] of this.expiring) {
      if (at > now) continue;
      this.expiring.delete(id);
      this.endIfCredentialDead(id);
    }
    if (this.expiring.size === 0) {
      clearInterval(this.expiryTimer);
      this.expiryTimer = undefined;
    }
  }

  /** Closes the device's live session (revocation, disablement); a no-op when it is not connected. */
  disconnect(deviceId: string): void {
    this.live.get(deviceId)?.close();
  }

  /** Stops listening, disconnects every client and releases the ports. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- internals ----

  private async init(): Promise<void> {
    const { Aedes } = (await importEsm('aedes')) as {
      Aedes: { createBroker(o: AedesOptions): Promise<Aedes> };
    };
    const l = this.limits;
    this.aedes = await Aedes.createBroker({
      id: `iotb-${process.pid}`,
      connectTimeout: l.connectTimeoutMs,
      keepaliveLimit: l.keepaliveLimitS,
      maxTopicLevels: l.maxTopicLevels,
      maxClientsIdLength: 128,
      drainTimeout: 30_000,
      preConnect: (client, packet, cb) => {
        if (packet.will) this.willTopicOf.set(client, packet.will.topic);
        cb(null, true);
      },
      authenticate: (client, username, password, done) => this.authenticate(client, username, password, done),
      authorizePublish: (client, packet, cb) => this.authorizePublish(client, packet, cb),
      authorizeSubscribe: (client, sub, cb) => this.authorizeSubscribe(client, sub, cb),
    });
    this.aedes.on('clientReady', (client) => this.onReady(client));
    this.aedes.on('subscribe', (subs, client) => {
      const s = this.sessions.get(client);
      // aedes reports refused topics with qos 128 (SUBACK failure)
      const granted = (sub: { topic: string; qos: number }): boolean =>
        sub.topic === s?.commandsTopic && sub.qos !== 128;
      if (!s || this.live.get(s.device.id) !== client) return;
      if (subs.some(granted)) this.emit('subscribed', s.device.id);
      const desired = (sub: { topic: string; qos: number }): boolean =>
        sub.topic === s.desiredTopic && sub.qos !== 128;
      if (subs.some(desired)) this.sendDesired(s.device.id);
    });
    this.aedes.on('clientDisconnect', (client) => this.onDisconnect(client));
    this.aedes.on('publish', (packet, client) => {
      const s = client && this.sessions.get(client);
      if (!s || this.handedOver.delete(packet.payload as Buffer)) return;
      this.deliver(s, packet.topic, packet.payload as Buffer, undefined);
    });
    this.aedes.on('ping', (_packet, client) => {
      const s = this.sessions.get(client);
      const p = s && this.presence.get(s.device.id);
      if (p) p.lastSeen = Date.now();
    });
    this.aedes.on('ack', (packet, client) => {
      const s = client && this.sessions.get(client);
      if (!s) return;
      // A persistent session's ack carries the stored packet; a clean session's does not (aedes keeps no
      // copy), so its acks are matched to our publications in order (MQTT-4.6.0-2: PUBACKs in order).
      if (packet?.cmd === 'publish')
        this.emit('delivered', s.device.id, packet.topic, packet.payload as Buffer);
      else if (!packet) {
        const sent = s.awaitingAck.shift();
        if (sent) this.emit('delivered', s.device.id, sent.topic, sent.payload);
      }
    });
    this.aedes.on('unsubscribe', (topics, client) => {
      const s = this.sessions.get(client);
      if (s && topics.includes(s.commandsTopic)) s.commandsQos = 0;
    });
    this.aedes.on('clientError', (client, err) => this.onConnectionError(client, err));
    this.aedes.on('connectionError', (client, err) => this.onConnectionError(client, err));
    this.registry.on('revoked', this.onRevoked);
    this.registry.on('disabled', this.onRevoked);
    this.registry.on('removed', this.onRemoved);
    this.registry.on('rotated', this.onRotated);
    this.registry.on('security', this.onRegistrySecurity); // revocations etc. reach the same event output
    this.twins?.on('desired', this.onDesired);
  }

  private async listen(opts: ListenOptions): Promise<void> {
    const onSocket = (socket: Socket): void => this.accept(socket, socket.remoteAddress ?? 'unknown');
    const mqtt = opts.tls
      ? createTlsServer({ ...opts.tls, handshakeTimeout: this.limits.connectTimeoutMs }, onSocket)
      : createNetServer(onSocket);
    await this.bind(mqtt, opts.host, opts.port);
    if (opts.ws) {
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
      });
      this.wss = new WebSocketServer({
        server: http,
        path: opts.ws.path,
        maxPayload: this.limits.maxPacketBytes,
      });
      this.wss.on('connection', (ws, req) => {
        const stream = createWebSocketStream(ws);
        this.accept(stream, req.socket.remoteAddress ?? 'unknown');
      });
      await this.bind(http, opts.ws.host, opts.ws.port);
    }
    this.started = true;
  }

  private async bind(server: NetServer | HttpServer, host: string, port: number): Promise<void> {
    server.on('connection', (s: Socket) => {
      this.rawSockets.add(s);
      s.once('close', () => this.rawSockets.delete(s));
    });
    server.on('tlsClientError', (_err: Error, s: Socket) => s.destroy());
    server.maxConnections = this.limits.maxConnections; // also bounds TLS handshakes not yet accepted
    this.servers.push(server);
    server.listen(port, host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => Promise.reject(err as Error)),
    ]);
    server.on('error', (err) => this.emit('error', err));
  }

  private accept(stream: Duplex, ip: string): void {
    if (this.closing) return void stream.destroy();
    if (this.connections.size >= this.limits.maxConnections) {
      refusedTotal.labels('max_connections').inc();
      return void stream.destroy();
    }
    const waitMs = this.rate.reserve(ip, this.limits.connectQueueMs);
    if (waitMs < 0) {
      refusedTotal.labels('connect_rate').inc();
      this.rateLimited(ip);
      return void stream.destroy();
    }
    if (waitMs > 0) {
      // Its token is taken: it waits for its turn (a connection closed meanwhile just goes).
      const timer = setTimeout(() => {
        this.queued.delete(stream);
        if (!stream.destroyed) this.handle(stream, ip);
      }, waitMs);
      this.queued.set(stream, timer);
      return;
    }
    this.handle(stream, ip);
  }

  private handle(stream: Duplex, ip: string): void {
    if (this.closing) return void stream.destroy();
    if ('setNoDelay' in stream) (stream as Socket).setNoDelay(true);
    const conn = new FrameGuard(stream, this.limits.maxPacketBytes);
    this.connections.add(conn);
    connectionsGauge.set(this.connections.size);
    conn.once('close', () => {
      this.connections.delete(conn);
      connectionsGauge.set(this.connections.size);
    });
    const client = this.aedes.handle(conn);
    this.ipOf.set(client, ip);
  }

  /** One security event per second at most for rate-limited connects, with the count: a flood stays a trickle. */
  private rateLimited(ip: string): void {
    this.rateLimitedSinceEvent++;
    const now = Date.now();
    if (now - this.lastRateLimitEvent < 1000) return;
    const ev = securityEvent('rate_limited', 'mqtt', 'connect_rate', undefined, ip);
    ev.count = this.rateLimitedSinceEvent;
    this.rateLimitedSinceEvent = 0;
    this.lastRateLimitEvent = now;
    this.emitSecurity(ev);
  }

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean | null) => void,
  ): void {
    const ip = this.ipOf.get(client) ?? 'unknown';
    const id = client.id;
    const refuse = (code: 2 | 3 | 4 | 5, reason: string, event = true): void => {
      refusedTotal.labels(reason).inc();
      if (event)
        this.emitSecurity(
          securityEvent('auth_failure', 'mqtt', reason, isValidDeviceId(id) ? id : undefined, ip),
        );
      done(refusal(code, reason), false);
    };
    if (!isValidDeviceId(id)) return refuse(2, 'invalid_client_id');
    if (username !== id) return refuse(2, 'client_id_mismatch');
    const key = `${id}@${ip}`;
    if (this.lockout.lockedFor(key) > 0) return refuse(3, 'locked_out', false);
    const result = password ? this.registry.verifyToken(id, password) : undefined;
    if (!result || !result.ok) {
      const reason = result ? result.reason : 'no_password';
      if (reason !== 'disabled') {
        const lockMs = this.lockout.fail(key);
        if (lockMs > 0) {
          const ev = securityEvent('lockout', 'mqtt', `locked_${lockMs}ms`, id, ip);
          this.emitSecurity(ev);
        }
      }
      return refuse(reason === 'disabled' ? 5 : 4, reason);
    }
    const session = this.sessionFor(result.device, result.credential, ip, client.clean);
    const will = this.willTopicOf.get(client);
    if (will !== undefined && !session.publishTopics.includes(will)) {
      this.emitSecurity(securityEvent('acl_denied', 'mqtt', 'will_topic', id, ip));
      return refuse(5, 'will_topic_not_allowed', false);
    }
    this.lockout.succeed(key);
    this.sessions.set(client, session);
    done(null, true);
  }

  private sessionFor(device: DeviceRecord, credential: string, ip: string, clean: boolean): Session {
    const base = `${this.topicPrefix}/${device.id}/`;
    const publishTopics = [`${base}telemetry`, `${base}status`, `${base}commands/ack`];
    if (this.twins) publishTopics.push(`${base}twin/reported`);
    return {
      device,
      credential,
      ip,
      publishTopics,
      commandsTopic: `${base}commands`,
      desiredTopic: this.twins ? `${base}twin/desired` : undefined,
      prefixLength: base.length,
      commandsQos: 0,
      clean,
      awaitingAck: [],
    };
  }

  /**
   * A device publishes only to its own telemetry, status and commands/ack topics (its Will included), and
   * with twins to its own twin/reported.
   */
  private authorizePublish(
    client: Client | null,
    packet: PublishPacket,
    cb: (err?: Error | null) => void,
  ): void {
    if (client === null) return cb(null); // the broker's own publications (already checked wills, $SYS)
    const s = this.sessions.get(client);
    if (s && packet.topic.length <= this.limits.maxTopicLength && s.publishTopics.includes(packet.topic)) {
      if (!this.storedKinds.has(packet.topic.slice(s.prefixLength))) return cb(null);
      const payload = packet.payload as Buffer;
      return this.acks.admit({
        connection: client,
        hold: packet.qos > 0, // QoS 2: the PUBREC waits the same way
        deliver: (ackId) => {
          this.handedOver.add(payload);
          this.deliver(s, packet.topic, payload, ackId);
        },
        // A closed connection gets no answer (aedes would only report the write to it as an error).
        release: (err) => {
          if (!(client as Client & { closed?: boolean }).closed) cb(err);
        },
      });
    }
    refusedTotal.labels('publish_acl').inc();
    this.emitSecurity(securityEvent('acl_denied', 'mqtt', 'publish_topic', s?.device.id, s?.ip));
    cb(new Error(`publish to ${packet.topic.slice(0, this.limits.maxTopicLength)} not allowed`));
  }

  /**
   * A device subscribes only to its own commands topic (and with twins its own twin/desired); anything else
   * gets a SUBACK failure (0x80).
   */
  private authorizeSubscribe(
    client: Client,
    sub: Subscription,
    cb: (err: Error | null, sub?: Subscription | null) => void,
  ): void {
    const s = this.sessions.get(client);
    if (s && sub.topic === s.commandsTopic) {
      if (sub.qos > 1) sub.qos = 1;
      s.commandsQos = sub.qos;
      return cb(null, sub);
    }
    if (s && sub.topic === s.desiredTopic) {
      if (sub.qos > 1) sub.qos = 1;
      return cb(null, sub);
    }
    refusedTotal.labels('subscribe_acl').inc();
    this.emitSecurity(securityEvent('acl_denied', 'mqtt', 'subscribe_topic', s?.device.id, s?.ip));
    cb(null, null);
  }

  private onReady(client: Client): void {
    const s = this.sessions.get(client);
    if (!s) return void client.close();
    // A revocation, disablement or token expiry between authentication and now must still win.
    if (!this.registry.isCredentialLive(s.device.id, s.credential)) return void client.close();
    const now = Date.now();
    this.live.set(s.device.id, client);
    this.presence.set(s.device.id, { online: true, lastSeen: now, connectedAt: now, ip: s.ip });
    this.emit('online', s.device.id);
    // A persistent session's subscriptions are restored before it is ready: no SUBSCRIBE will come.
    if (hasSubscription(client, s.commandsTopic)) this.emit('subscribed', s.device.id);
    if (s.desiredTopic !== undefined && hasSubscription(client, s.desiredTopic))
      this.sendDesired(s.device.id);
    this.emit('connection', {
      event: 'connected',
      deviceId: s.device.id,
      ip: s.ip,
      at: now,
    } satisfies ConnectionEvent);
  }

  private onDisconnect(client: Client): void {
    const s = this.sessions.get(client);
    if (!s || this.live.get(s.device.id) !== client) return; // refused, or replaced by a newer session
    this.live.delete(s.device.id);
    const now = Date.now();
    const p = this.presence.get(s.device.id);
    this.presence.set(s.device.id, {
      online: false,
      lastSeen: p ? Math.max(p.lastSeen, now) : now,
      ip: s.ip,
    });
    this.emit('offline', s.device.id);
    this.emit('connection', {
      event: 'disconnected',
      deviceId: s.device.id,
      ip: s.ip,
      at: now,
    } satisfies ConnectionEvent);
  }

  private onConnectionError(client: Client | undefined, err: Error): void {
    if (err instanceof PacketTooLargeError) {
      refusedTotal.labels('packet_too_large').inc();
      const s = client && this.sessions.get(client);
      const ip = client && this.ipOf.get(client);
      this.emitSecurity(securityEvent('limit_exceeded', 'mqtt', 'packet_too_large', s?.device.id, ip));
    }
  }

  /** A device's publication to the flow ('message'); `ackId` when its PUBACK waits for storage. */
  private deliver(s: Session, topic: string, payload: Buffer, ackId: number | undefined): void {
    const p = this.presence.get(s.device.id);
    if (p) p.lastSeen = Date.now();
    const kind = topic.slice(s.prefixLength);
    messagesTotal.labels(kind).inc();
    if (kind === 'twin/reported') return this.mergeReported(s, payload);
    const msg: DeviceMessage = { device: this.deviceRef(s), topic, kind, payload };
    if (ackId !== undefined) msg.ackId = ackId;
    this.emit('message', msg);
  }

  /**
   * The device's full desired document (`{ state, version, updatedAt }`) to its twin/desired topic, QoS 1,
   * when it is connected and subscribed there: on subscribe (or a restored session) and after each change.
   * Not retained: the broker sends the current document itself whenever the device (re)subscribes.
   */
  private sendDesired(deviceId: string, view = this.twins?.get(deviceId)): void {
    const client = this.live.get(deviceId);
    const s = client && this.sessions.get(client);
    if (!view || !s?.desiredTopic || !hasSubscription(client!, s.desiredTopic)) return;
    const { state, version, updatedAt } = view.desired;
    this.publishToDevice(deviceId, 'twin/desired', JSON.stringify({ state, version, updatedAt }), {
      qos: 1,
    }).catch(() => undefined); // the broker closed meanwhile: the device gets it on its next subscribe
  }

  /** A device's twin/reported publication, merged; a refused one is counted and becomes a security event. */
  private mergeReported(s: Session, payload: Buffer): void {
    if (!this.twins) return;
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
        if (this.listenerCount('error') > 0)
          this.emit('error', new Error(`twin report of ${s.device.id} not stored: ${message}`));
        return;
      }
      const kind = err.code === 'TOO_LARGE' ? 'limit_exceeded' : 'invalid_payload';
      const reason =
        patch === undefined ? 'twin_reported_not_json' : `twin_reported_${err.code.toLowerCase()}`;
      this.emitSecurity(securityEvent(kind, 'mqtt', reason, s.device.id, s.ip));
    }
  }

  private deviceRef(s: Session): DeviceRef {
    return this.registry.getDevice(s.device.id) ?? s.device;
  }

  private emitSecurity(ev: SecurityEvent): void {
    this.emit('security', ev);
  }

  private async shutdown(): Promise<void> {
    this.registry.off('revoked', this.onRevoked);
    this.registry.off('disabled', this.onRevoked);
    this.registry.off('removed', this.onRemoved);
    this.registry.off('rotated', this.onRotated);
    clearInterval(this.expiryTimer);
    this.registry.off('security', this.onRegistrySecurity);
    this.twins?.off('desired', this.onDesired);
    this.acks.releaseAll();
    const closed = this.servers.map((s) => (s.listening ? once(s, 'close') : Promise.resolve()));
    for (const s of this.servers) if (s.listening) s.close();
    this.wss?.close();
    if (this.aedes) {
      this.aedesClosed = true;
      await Promise.race([
        new Promise<void>((resolve) => this.aedes.close(() => resolve())),
        new Promise((resolve) => setTimeout(resolve, 2000).unref()),
      ]);
    }
    for (const [stream, timer] of this.queued) {
      clearTimeout(timer);
      stream.destroy();
    }
    this.queued.clear();
    for (const c of this.connections) c.destroy();
    for (const s of this.rawSockets) s.destroy();
    await Promise.all(closed);
    this.live.clear();
    this.setState('closed');
  }
}
