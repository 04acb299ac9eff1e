/**
 * The embedded MQTT broker (aedes), composed of one part per concern:
 * - listeners.ts: the listeners and the connection limits in front of aedes;
 * - authentication.ts: CONNECT against the registry, lockouts, sessions ending with their token;
 * - acl.ts: the topics each device may publish and subscribe to;
 * - publications.ts + ack-gate.ts: what devices publish, to the flow, PUBACK once stored;
 * - device-link.ts, twins.ts: what the broker publishes to devices;
 * - presence.ts: who is online, last seen.
 * This file wires them to aedes and to the registry and is what callers import (options and events included).
 */
import { EventEmitter } from 'node:events';
import type { Aedes, Client } from 'aedes';
import type { DeviceLink } from '../device-contracts';
import type { DeviceRef } from '../device-id';
import { EventBindings } from '../event-bindings';
import type { Registry, RegistryEvents } from '../registry/registry';
import { securityEvent, type SecurityEvent } from '../security-events';
import type { TwinEvents, TwinService } from '../twin/twin-service';
import { TopicAcl } from './acl';
import { AckGate, type AckGateStats } from './ack-gate';
import {
  createAedes,
  hasSubscription,
  type AuthorizePublishHook,
  type AuthorizeSubscribeHook,
  takeClientPublications,
} from './aedes';
import { Authenticator, RotationWatch } from './authentication';
import { DeviceLinkOut } from './device-link';
import type { BrokerEvents, BrokerState, ConnectionEvent } from './events';
import { PacketTooLargeError } from './frame-guard';
import { Listeners } from './listeners';
import { refusedTotal } from './metrics';
import {
  DEFAULT_LIMITS,
  plaintextBeyondLoopback,
  type BrokerLimits,
  type BrokerOptions,
  type ListenOptions,
} from './options';
import { PresenceBook, type Presence } from './presence';
import { DevicePublications } from './publications';
import { ClientTable } from './session';
import { TwinLink } from './twins';

export type { BrokerEvents, BrokerState, ConnectionEvent } from './events';
export {
  DEFAULT_LIMITS,
  isLoopbackHost,
  plaintextBeyondLoopback,
  type BrokerLimits,
  type BrokerOptions,
  type ListenOptions,
} from './options';
export type { Presence } from './presence';

/** What the iotb-broker config node offers: `RED.nodes.getNode(config.broker).broker` (a DeviceLink). */
export interface BrokerHolder {
  /** Undefined when the node has no usable registry or TLS files. */
  broker?: DeviceBroker;
  /** The device twins this broker serves (docs/twin.md); undefined when the twin file could not be opened. */
  twins?: TwinService;
}

/**
 * The embedded MQTT broker: authenticates each CONNECT against the registry (username = device id,
 * password = token, client id = device id), confines each device to its own topics, enforces the limits,
 * tracks presence, and implements `DeviceLink` for command dispatch. Events in `BrokerEvents`.
 */
export class DeviceBroker extends EventEmitter<BrokerEvents> implements DeviceLink {
  readonly limits: BrokerLimits;
  readonly topicPrefix: string;
  private aedes: Aedes | undefined;
  private readonly registry: Registry;
  private readonly clients = new ClientTable();
  private readonly presence = new PresenceBook();
  private readonly network: Listeners;
  private readonly acl: TopicAcl;
  private readonly auth: Authenticator;
  private readonly rotation: RotationWatch;
  private readonly publications: DevicePublications;
  private readonly link: DeviceLinkOut;
  private readonly twinLink: TwinLink | undefined;
  private readonly bindings = new EventBindings();
  private closing: Promise<void> | undefined;
  private aedesClosed = false;
  private started = false;
  private currentState: BrokerState = 'starting';

  /** Creates the broker without listening: `start` opens the listeners (nodes can hold it meanwhile). */
  constructor(opts: BrokerOptions) {
    super();
    this.registry = opts.registry;
    this.topicPrefix = opts.topicPrefix ?? 'devices';
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const security = (ev: SecurityEvent): void => this.emitSecurity(ev);
    this.network = new Listeners(this.limits, {
      handle: (conn, ip) => {
        if (!this.aedes || this.closing) return void conn.destroy();
        this.clients.setIp(this.aedes.handle(conn), ip);
      },
      security,
      error: (err) => this.emit('error', err),
    });
    this.acl = new TopicAcl(this.limits.maxTopicLength, security);
    const twins = opts.twins;
    this.auth = new Authenticator(
      this.limits,
      this.registry,
      this.clients,
      this.acl,
      this.topicPrefix,
      twins !== undefined,
      security,
    );
    this.rotation = new RotationWatch(this.registry, (id) => this.endIfCredentialDead(id));
    this.link = new DeviceLinkOut(this.topicPrefix, this.presence, this.clients, (packet) => {
      const aedes = this.aedes;
      if (!aedes || !this.running) return Promise.reject(new Error('the broker is not running'));
      return new Promise((resolve, reject) =>
        aedes.publish(packet, (err) => (err ? reject(err) : resolve())),
      );
    });
    this.twinLink =
      twins &&
      new TwinLink(twins, this.link, security, (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
    this.publications = new DevicePublications(new AckGate(opts.acks), {
      deviceRef: (s) => this.registry.getDevice(s.device.id) ?? s.device,
      seen: (id) => this.presence.seen(id, Date.now()),
      reported: (s, payload) => this.twinLink?.mergeReported(s, payload),
      message: (msg) => this.emit('message', msg),
    });
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
      const aedes = await this.init();
      if (this.closing) {
        // Closed while aedes was being created: shutdown found no aedes to close, so its timers live on.
        if (!this.aedesClosed) await new Promise<void>((resolve) => aedes.close(() => resolve()));
        throw new Error('the broker was closed while starting');
      }
      await this.network.listen(listen);
      this.started = true;
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
    return this.presence.client(deviceId) !== undefined;
  }

  isSubscribed(deviceId: string): boolean {
    return this.link.isSubscribed(deviceId);
  }

  publishToDevice(
    deviceId: string,
    subtopic: string,
    payload: Buffer | string,
    opts: { qos: 0 | 1 },
  ): Promise<void> {
    return this.link.publishToDevice(deviceId, subtopic, payload, opts);
  }

  // ---- presence and state ----

  getPresence(deviceId: string): Presence {
    return this.presence.get(deviceId);
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
      connections: this.network.size,
      online: this.presence.online,
      trackedAddresses: this.network.rate.size,
      trackedLockouts: this.auth.lockout.size,
      acks: this.publications.acks.stats(),
    };
  }

  /**
   * A node that stores these kinds (iotb-device-in) takes their acknowledgements: from now on a QoS 1
   * publication of such a kind is PUBACKed only when the ack ledger settles the `ackId` it carries in the
   * 'message' event. The returned function gives them back (node closing): the readings held then are not
   * acknowledged, and their connections are closed so the devices send them again.
   */
  takeAcks(kinds: readonly string[]): () => void {
    return this.publications.takeAcks(kinds);
  }

  /** The registered device (for `msg.device`), undefined when it is not (or no longer) registered. */
  deviceRefOf(deviceId: string): DeviceRef | undefined {
    return this.registry.getDevice(deviceId);
  }

  /** Closes the device's live session (revocation, disablement); a no-op when it is not connected. */
  disconnect(deviceId: string): void {
    this.presence.client(deviceId)?.close();
  }

  /** Stops listening, disconnects every client and releases the ports. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- wiring ----

  /** aedes' `authorizePublish`: the broker's own publications pass; a device's pass the ACL, then the gate. */
  private readonly authorizePublish: AuthorizePublishHook = (client, packet, cb) => {
    if (client === null) return cb(null); // the broker's own publications (already checked wills, $SYS)
    const s = this.clients.session(client);
    if (!this.acl.mayPublish(s, packet.topic)) return cb(this.acl.publishRefusal(packet.topic));
    this.publications.admit(client, s, packet, cb);
  };

  private readonly authorizeSubscribe: AuthorizeSubscribeHook = (client, sub, cb) => {
    cb(null, this.acl.grant(this.clients.session(client), sub));
  };

  private async init(): Promise<Aedes> {
    const l = this.limits;
    const aedes = await createAedes({
      id: `iotb-${process.pid}`,
      connectTimeout: l.connectTimeoutMs,
      keepaliveLimit: l.keepaliveLimitS,
      maxTopicLevels: l.maxTopicLevels,
      maxClientsIdLength: 128,
      drainTimeout: 30_000,
      preConnect: (client, packet, cb) => {
        if (packet.will) this.clients.setWillTopic(client, packet.will.topic);
        cb(null, true);
      },
      authenticate: this.auth.authenticate,
      authorizePublish: this.authorizePublish,
      authorizeSubscribe: this.authorizeSubscribe,
    });
    this.aedes = aedes;
    aedes.on('clientReady', (client) => this.onReady(client));
    aedes.on('subscribe', (subs, client) => {
      const s = this.clients.session(client);
      if (!s || this.presence.client(s.device.id) !== client) return;
      // aedes reports refused topics with qos 128 (SUBACK failure)
      const granted = (topic: string): boolean =>
        subs.some((sub: { topic: string; qos: number }) => sub.topic === topic && sub.qos !== 128);
      if (granted(s.commandsTopic)) this.emit('subscribed', s.device.id);
      if (s.desiredTopic !== undefined && granted(s.desiredTopic)) this.twinLink?.sendDesired(s.device.id);
    });
    aedes.on('clientDisconnect', (client) => this.onDisconnect(client));
    takeClientPublications(aedes, (packet, client) => {
      const s = this.clients.session(client);
      if (s) this.publications.published(s, packet);
      return s !== undefined;
    });
    aedes.on('ping', (_packet, client) => {
      const s = this.clients.session(client);
      if (s) this.presence.seen(s.device.id, Date.now());
    });
    aedes.on('ack', (packet, client) => {
      const s = this.clients.session(client);
      const sent = s && this.link.acknowledged(s, packet);
      if (sent) this.emit('delivered', s.device.id, sent.topic, sent.payload);
    });
    aedes.on('unsubscribe', (topics, client) => {
      const s = this.clients.session(client);
      if (s && topics.includes(s.commandsTopic)) s.commandsQos = 0;
    });
    aedes.on('clientError', (client, err) => this.onConnectionError(client, err));
    aedes.on('connectionError', (client, err) => this.onConnectionError(client, err));
    const disconnect = (id: string): void => this.disconnect(id);
    this.bindings.bind<RegistryEvents>(this.registry, {
      revoked: disconnect,
      disabled: disconnect,
      removed: (id) => this.presence.forget(id),
      rotated: this.rotation.rotated,
      security: (ev) => this.emitSecurity(ev), // revocations etc. reach the same event output
    });
    if (this.twinLink)
      this.bindings.bind<TwinEvents>(this.twinLink.twins, { desired: this.twinLink.sendDesired });
    return aedes;
  }

  private onReady(client: Client): void {
    const s = this.clients.session(client);
    // A revocation, disablement or token expiry between authentication and now must still win.
    if (!s || !this.auth.isLive(client)) {
      client.close();
      return;
    }
    const now = Date.now();
    this.presence.connected(s.device.id, client, s.ip, now);
    this.emit('online', s.device.id);
    // A persistent session's subscriptions are restored before it is ready: no SUBSCRIBE will come.
    if (hasSubscription(client, s.commandsTopic)) this.emit('subscribed', s.device.id);
    this.twinLink?.sendDesired(s.device.id);
    this.emit('connection', {
      event: 'connected',
      deviceId: s.device.id,
      ip: s.ip,
      at: now,
    } satisfies ConnectionEvent);
  }

  private onDisconnect(client: Client): void {
    const s = this.clients.session(client);
    const now = Date.now();
    if (!s || !this.presence.disconnected(s.device.id, client, s.ip, now)) return;
    this.emit('offline', s.device.id);
    this.emit('connection', {
      event: 'disconnected',
      deviceId: s.device.id,
      ip: s.ip,
      at: now,
    } satisfies ConnectionEvent);
  }

  private onConnectionError(client: Client | undefined, err: Error): void {
    if (!(err instanceof PacketTooLargeError)) return;
    refusedTotal.labels('packet_too_large').inc();
    const s = client && this.clients.session(client);
    const ip = client && this.clients.ip(client);
    this.emitSecurity(securityEvent('limit_exceeded', 'mqtt', 'packet_too_large', s?.device.id, ip));
  }

  /** A session whose token stopped verifying (rotation grace over) is closed like a revoked one. */
  private endIfCredentialDead(id: string): void {
    const client = this.presence.client(id);
    if (client && !this.auth.isLive(client)) client.close();
  }

  private emitSecurity(ev: SecurityEvent): void {
    this.emit('security', ev);
  }

  private async shutdown(): Promise<void> {
    this.bindings.unbindAll();
    this.rotation.stop();
    this.publications.acks.releaseAll();
    const serversClosed = this.network.stopListening();
    const aedes = this.aedes;
    if (aedes) {
      this.aedesClosed = true;
      await Promise.race([
        new Promise<void>((resolve) => aedes.close(() => resolve())),
        new Promise((resolve) => setTimeout(resolve, 2000).unref()),
      ]);
    }
    this.network.destroyConnections();
    await serversClosed;
    this.presence.clear();
    this.setState('closed');
  }
}
