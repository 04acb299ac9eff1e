import mqtt, {
  type IClientOptions,
  type IConnackPacket,
  type IPublishPacket,
  type IStream,
  type MqttClient,
} from 'mqtt';
import { Authenticator } from '../auth/authenticator';
import type { DeviceRef } from '../device-id';
import type { Registry } from '../registry/registry';
import { rejection, type Rejection } from '../rejection';
import { ackLedger, type AckOutcome, type AckOwner } from './ack-ledger';
import { ackFailuresTotal, acksHeld, ackTimeoutsTotal } from './ingest-metrics';
import { MicroBatcher, type MicroBatch } from './micro-batch';

/**
 * Ingest from an external MQTT broker (Mosquitto, EMQX, HiveMQ) where a PUBACK means "stored".
 *
 * Each session subscribes at QoS 1 with a persistent session (clean=false; MQTT 5 session expiry) and a
 * stable client id, so the broker keeps and redelivers every publication we have not acknowledged — after a
 * crash, a restart or a dropped connection. Each publication's PUBACK is held in the ack ledger until a
 * writer has the reading (or its rejection event) in the durable spool.
 *
 * Sessions: with PUBACKs held until the spool has a reading, one connection carries at most its in-flight
 * window (receiveMaximum) per round trip broker → flow → spool → broker, and the broker serves it from
 * one queue. `sessions` > 1 opens that many connections that split the readings through a shared subscription
 * (`$share/{group}/...`), each with its own window, held acknowledgements and persistent session.
 *
 * How the PUBACK is held without serialising ingest: mqtt.js handles incoming packets strictly one at a
 * time; for QoS 1 it calls `handleMessage(packet, cb)` (public, overridable) and writes the PUBACK only in
 * `cb`, taking the next packet after that. Deferring `cb` would therefore allow one reading per spool
 * round-trip. Instead `handleMessage` calls `cb` at once with an error (`ACK_HELD`): mqtt.js then skips its
 * own PUBACK and goes on with the next packet (handlers/publish.js, mqtt.js 5.16). The PUBACKs are written
 * later by this module, straight to the connection's stream: a success PUBACK is four bytes in both MQTT
 * 3.1.1 and 5 (MQTT 5 3.4.2.1: reason code and properties may be left out when the reason is success), and
 * all that settle together leave in one write. PUBACKs leave in the order the publications arrived (MQTT
 * 4.6: QoS 1 acks in receive order), so a settled reading waits for the ones received before it.
 *
 * Backpressure: the broker sends at most `receiveMaximum` unacknowledged publications per session (MQTT 5;
 * for 3.1.1 the broker's own in-flight limit, e.g. Mosquitto `max_inflight_messages`). If a session's held
 * acks still reach `maxHeld`, its `handleMessage` callback is withheld until they drop below it: mqtt.js stops
 * reading that socket, TCP pushes back on the broker, and the heap does not grow with the size of a burst.
 *
 * Outcomes (ack-ledger.ts): `stored` and `timeout` release the PUBACK (a timeout is counted); `failed` (the
 * spool could not take it) drops that session's connection without acknowledging, so the broker redelivers
 * everything unacknowledged when it reconnects, after a delay that doubles with each failure in a row.
 */

/** The label of this path in the shared ingest metrics. */
export const EXTERNAL_MQTT_SOURCE = 'external-mqtt';

/** Sessions one node may open. */
export const MAX_SESSIONS = 8;

/** Passed to `handleMessage`'s callback: mqtt.js then writes no PUBACK; we write it once the reading is durable. */
const ACK_HELD = new Error('acknowledgement held until the reading is durable');

const MAX_RECONNECT_MS = 30_000;
const noLog = (): void => undefined;
/** PUBACK fixed header (type 4, flags 0) and remaining length 2: the packet identifier follows. */
const PUBACK_HEADER = 0x40;
const PUBACK_BYTES = 4;
/** Set on a held acknowledgement (beside its 16-bit packet id) once its reading settled. */
const READY = 1 << 16;

export interface ExternalMqttOptions {
  /** mqtt://host:port or mqtts://host:port. */
  url: string;
  /** Stable across restarts, unique per instance: the broker keeps this client's session under it. */
  clientId: string;
  protocolVersion: 4 | 5;
  /** First topic level; readings arrive on `{topicPrefix}/{deviceId}/telemetry`. */
  topicPrefix: string;
  /** Non-empty: subscribe as `$share/{sharedGroup}/...` so several instances split the load. */
  sharedGroup: string;
  /**
   * Connections to the broker, 1-8, splitting the readings through a shared subscription (the group is
   * `sharedGroup`, or one derived from the client id). Session k > 0 uses the client id `{clientId}-s{k}`.
   */
  sessions: number;
  /** MQTT 5: how long the broker keeps the session (and queues for it) while we are away. */
  sessionExpiryS: number;
  /** MQTT 5: unacknowledged publications the broker may send us at once, per session. */
  receiveMaximum: number;
  /** Held acknowledgements at which we stop reading from the broker, per session. */
  maxHeld: number;
  ackTimeoutMs: number;
  /** Publications per message; 1 sends each publication as a message of its own. */
  batchSize: number;
  /** How long the first publication of a batch waits for more. */
  batchWaitMs: number;
  /** Upper bound of that wait while batches close half empty under steady traffic (see MicroBatcher). */
  batchWaitMaxMs: number;
  payloadFormat: 'string' | 'buffer';
  username?: string;
  password?: string;
  /** PEM of the CA that signed the broker's certificate (mqtts). */
  ca?: string;
  /** First reconnect delay after a connection loss or a write failure. */
  reconnectMs?: number;
}

/** One publication, in iotb-device-in's message shape plus its held acknowledgement. */
export interface Reading {
  topic: string;
  payload: Buffer | string;
  device: DeviceRef;
  kind: 'telemetry';
  ackId: number | null;
}

/** A publication refused before it entered the pipeline (unknown, disabled or revoked device). */
export interface RefusedReading {
  topic: string;
  payload: Buffer | string;
  ackId: number | null;
  rejection: Rejection;
}

export interface ExternalMqttSink {
  reading(msg: Reading | MicroBatch): void;
  refused(msg: RefusedReading): void;
  /** Something the status shows changed. */
  changed(): void;
  error(err: Error): void;
}

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface ExternalMqttSnapshot {
  /** The least advanced session's state (all `connected` means every subscription is granted). */
  state: ConnectionState;
  sessions: number;
  /** Sessions above the configured count still being looked at or drained (see `sessions`). */
  retiring: number;
  held: number;
  /** Reading from the broker is paused on some session: `maxHeld` acknowledgements are held there. */
  paused: boolean;
  received: number;
  timeouts: number;
  failures: number;
  lastError?: string;
}

/** Held acknowledgements of one connection: a ring of packet ids in receive order, each ready or not. */
class ConnectionAcks implements AckOwner {
  /** messageId in the low 16 bits; READY set once settled. */
  private ring = new Int32Array(1024);
  /** The ack id of each entry: increasing along the ring, since the ledger hands out ids in order. */
  private ids = new Float64Array(1024);
  private head = 0;
  private count = 0;
  /** PUBACKs released in this tick, written after it. */
  private out = Buffer.allocUnsafe(4096);
  private outBytes = 0;

  constructor(
    readonly stream: IStream,
    /** Whether the connection is still the client's current, connected one. */
    private readonly canWrite: () => boolean,
    private readonly onSettled: (conn: ConnectionAcks, outcome: AckOutcome) => void,
  ) {}

  get size(): number {
    return this.count;
  }

  hold(messageId: number, timeoutMs: number): number {
    const id = ackLedger.hold(this, timeoutMs);
    if (this.count === this.ring.length) this.grow();
    const slot = (this.head + this.count) & (this.ring.length - 1);
    this.ring[slot] = messageId;
    this.ids[slot] = id;
    this.count++;
    return id;
  }

  settled(id: number, outcome: AckOutcome): void {
    const slot = this.slotOf(id);
    if (slot < 0) return;
    if (outcome !== 'failed') this.ring[slot] |= READY;
    this.onSettled(this, outcome);
  }

  /** The ring slot of ack id `id` (binary search: ids increase from the head), or -1. */
  private slotOf(id: number): number {
    const mask = this.ring.length - 1;
    let lo = 0;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.ids[(this.head + mid) & mask];
      if (at === id) return (this.head + mid) & mask;
      if (at < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /**
   * Releases the ready acknowledgements at the head of the queue; returns how many. Their PUBACKs are written
   * after the current tick, all in one write: many readings settle in one tick (a batch reached the spool).
   */
  release(): number {
    const mask = this.ring.length - 1;
    let n = 0;
    while (n < this.count && (this.ring[(this.head + n) & mask] & READY) !== 0) n++;
    if (n === 0) return 0;
    if (this.out.length < this.outBytes + n * PUBACK_BYTES)
      this.out = Buffer.concat([this.out.subarray(0, this.outBytes)], (this.outBytes + n * PUBACK_BYTES) * 2);
    for (let i = 0; i < n; i++) {
      const at = this.outBytes + i * PUBACK_BYTES;
      this.out[at] = PUBACK_HEADER;
      this.out[at + 1] = 2;
      this.out.writeUInt16BE(this.ring[(this.head + i) & mask] & 0xffff, at + 2);
    }
    if (this.outBytes === 0) process.nextTick(this.writeOut);
    this.outBytes += n * PUBACK_BYTES;
    this.head = (this.head + n) & mask;
    this.count -= n;
    return n;
  }

  private readonly writeOut = (): void => {
    const bytes = this.outBytes;
    this.outBytes = 0;
    if (this.canWrite()) this.stream.write(Buffer.from(this.out.subarray(0, bytes)));
  };

  private grow(): void {
    const size = this.ring.length * 2;
    const ring = new Int32Array(size);
    const ids = new Float64Array(size);
    const mask = this.ring.length - 1;
    for (let i = 0; i < this.count; i++) {
      ring[i] = this.ring[(this.head + i) & mask];
      ids[i] = this.ids[(this.head + i) & mask];
    }
    this.ring = ring;
    this.ids = ids;
    this.head = 0;
  }
}

/** The topic filter for the options: `{prefix}/+/telemetry`. */
function telemetryFilter(topicPrefix: string): string {
  return `${topicPrefix}/+/telemetry`;
}

/** A shared subscription's group for a client id: one topic level, so the id's `/`, `+`, `#` become `_`. */
function groupOf(clientId: string): string {
  return `iotb-${clientId.replace(/[/+#]/g, '_')}`;
}

const LEVEL = /^[^/+#$][^/+#]*$/;

/**
 * The subscription for the options: `{prefix}/+/telemetry`, or `$share/{group}/{prefix}/+/telemetry` with a
 * shared group or more than one session (the group derived from the client id when none is set).
 */
export function telemetrySubscription(
  opts: Pick<ExternalMqttOptions, 'topicPrefix' | 'sharedGroup'> &
    Partial<Pick<ExternalMqttOptions, 'sessions' | 'clientId'>>,
): string {
  if (!LEVEL.test(opts.topicPrefix))
    throw new Error(`topic prefix "${opts.topicPrefix}" must be one topic level without wildcards`);
  if (opts.sharedGroup && !LEVEL.test(opts.sharedGroup))
    throw new Error(`shared group "${opts.sharedGroup}" must be one topic level without wildcards`);
  const filter = telemetryFilter(opts.topicPrefix);
  if (opts.sharedGroup) return `$share/${opts.sharedGroup}/${filter}`;
  if ((opts.sessions ?? 1) > 1) return `$share/${groupOf(opts.clientId ?? '')}/${filter}`;
  return filter;
}

/** One connection to the broker: its client, the acknowledgements it holds, its backpressure. */
class Session {
  readonly client: MqttClient;
  conn: ConnectionAcks | undefined;
  /** `handleMessage`'s callback, withheld while `maxHeld` acks are held on this session. */
  resume: (() => void) | undefined;
  state: ConnectionState = 'connecting';
  failuresInRow = 0;
  /** Publications received: a retiring session is idle once this stops changing with nothing held. */
  received = 0;
  /** A retiring session's check for being drained. */
  idle: NodeJS.Timeout | undefined;

  constructor(
    url: string,
    readonly options: IClientOptions,
    /** A session above the configured count, left by an earlier configuration: drained, then ended. */
    readonly retiring = false,
  ) {
    this.client = mqtt.connect(url, options);
  }
}

/** How often a retiring session is checked for being drained. */
const RETIRE_IDLE_MS = 2000;

export class ExternalMqttIngest {
  readonly subscription: string;
  /** Subscriptions this node makes in other configurations, removed from a resumed session (see subscribe). */
  private readonly otherForms: string[];
  private readonly sessions: Session[];
  /** Sessions of ids above the configured count that the broker still kept (see retire). */
  private readonly retiring: Session[] = [];
  /** MQTT 3.1.1: clean connections that end a retired session. */
  private readonly cleaners = new Set<MqttClient>();
  private readonly auth: Authenticator;
  private readonly batcher: MicroBatcher | undefined;
  private readonly heldGauge = acksHeld.labels(EXTERNAL_MQTT_SOURCE);
  /** Change of held acknowledgements not yet in the gauge: applied once per tick, not once per reading. */
  private heldDelta = 0;
  private heldDeltaScheduled = false;
  private readonly applyHeldDelta = (): void => {
    const delta = this.heldDelta;
    this.heldDelta = 0;
    this.heldDeltaScheduled = false;
    if (delta !== 0) this.heldGauge.inc(delta);
  };
  private readonly baseReconnectMs: number;
  private closed = false;
  private lastError: string | undefined;
  private received = 0;
  private timeouts = 0;
  private failures = 0;

  constructor(
    registry: Registry,
    private readonly opts: ExternalMqttOptions,
    private readonly sink: ExternalMqttSink,
  ) {
    if (!Number.isInteger(opts.sessions) || opts.sessions < 1 || opts.sessions > MAX_SESSIONS)
      throw new Error(`sessions must be a whole number from 1 to ${MAX_SESSIONS} (got ${opts.sessions})`);
    this.subscription = telemetrySubscription(opts);
    const filter = telemetryFilter(opts.topicPrefix);
    this.otherForms = opts.sharedGroup
      ? []
      : [filter, `$share/${groupOf(opts.clientId)}/${filter}`].filter((s) => s !== this.subscription);
    this.auth = new Authenticator(registry, { mode: 'topic', topicPrefix: opts.topicPrefix });
    this.baseReconnectMs = opts.reconnectMs ?? 1000;
    if (opts.batchSize > 1)
      this.batcher = new MicroBatcher(
        { maxCount: opts.batchSize, maxWaitMs: opts.batchWaitMs, maxAdaptiveWaitMs: opts.batchWaitMaxMs },
        (b) => sink.reading(b),
      );
    const sessionOptions = (clientId: string): IClientOptions => ({
      clientId,
      clean: false,
      protocolVersion: opts.protocolVersion,
      reconnectPeriod: this.baseReconnectMs,
      log: noLog, // mqtt.js formats a debug line per packet otherwise, even with debugging off
      connectTimeout: 10_000,
      keepalive: 60,
      resubscribe: false, // subscribed on every connect (below): also when the broker lost the session
      queueQoSZero: false,
      username: opts.username || undefined,
      password: opts.password || undefined,
      ca: opts.ca || undefined,
      properties:
        opts.protocolVersion === 5
          ? { sessionExpiryInterval: opts.sessionExpiryS, receiveMaximum: opts.receiveMaximum }
          : undefined,
    });
    const idOf = (k: number): string => (k === 0 ? opts.clientId : `${opts.clientId}-s${k}`);
    this.sessions = Array.from({ length: opts.sessions }, (_, k) => {
      const session = new Session(opts.url, sessionOptions(idOf(k)));
      this.attach(session);
      return session;
    });
    // Sessions an earlier configuration with more of them left at the broker: a shared subscription keeps
    // handing readings to an absent member's session, so each is drained and ended (see retire).
    for (let k = opts.sessions; k < MAX_SESSIONS; k++) {
      const session = new Session(opts.url, sessionOptions(idOf(k)), true);
      this.attachRetiring(session);
      this.retiring.push(session);
    }
  }

  snapshot(): ExternalMqttSnapshot {
    const order: ConnectionState[] = ['closed', 'disconnected', 'connecting', 'connected'];
    const state = this.closed
      ? 'closed'
      : (order.find((st) => this.sessions.some((s) => s.state === st)) ?? 'connected');
    const s: ExternalMqttSnapshot = {
      state,
      sessions: this.sessions.length,
      retiring: this.retiring.length,
      held: this.sessions.reduce((n, x) => n + (x.conn?.size ?? 0), 0),
      paused: this.sessions.some((x) => x.resume !== undefined),
      received: this.received,
      timeouts: this.timeouts,
      failures: this.failures,
    };
    if (this.lastError !== undefined && state !== 'connected') s.lastError = this.lastError;
    return s;
  }

  /** Disconnects; held acknowledgements are forgotten, so the broker redelivers those readings later. */
  async close(): Promise<void> {
    this.closed = true;
    this.batcher?.discard();
    const all = [...this.sessions, ...this.retiring];
    for (const s of all) {
      clearInterval(s.idle);
      s.state = 'closed';
      this.dropConnection(s);
    }
    for (const c of this.cleaners) c.end(true);
    await Promise.all(all.map((s) => s.client.endAsync(false)));
  }

  /**
   * A session of an id above the configured count. Not kept by the broker: ended at once, leaving nothing
   * behind. Kept: its subscriptions are removed (no new readings go to it), what it holds is received and
   * acknowledged like any session's readings, and once nothing arrived and nothing is held for
   * RETIRE_IDLE_MS it is ended for good. Until its first CONNACK it reconnects like any session.
   */
  private attachRetiring(session: Session): void {
    const { client } = session;
    client.handleMessage = (packet, cb): void => {
      session.received++;
      this.onPublish(session, packet, cb);
    };
    client.on('close', () => this.dropConnection(session));
    client.on('error', (err) => this.sink.error(err));
    client.once('connect', (connack: IConnackPacket) => {
      if (!connack.sessionPresent) return this.endSession(session);
      client.unsubscribe([this.subscription, ...this.otherForms]);
      let seen = -1;
      session.idle = setInterval(() => {
        if (session.received !== seen || (session.conn?.size ?? 0) > 0) {
          seen = session.received;
          return;
        }
        this.endSession(session);
      }, RETIRE_IDLE_MS);
    });
  }

  /** Ends a retiring session at the broker: MQTT 5 by a session expiry of 0, 3.1.1 by a clean connect. */
  private endSession(session: Session): void {
    clearInterval(session.idle);
    if (session.state === 'closed') return;
    session.state = 'closed';
    const done = (): void => {
      const i = this.retiring.indexOf(session);
      if (i >= 0) this.retiring.splice(i, 1);
      this.sink.changed();
    };
    if (this.opts.protocolVersion === 5) {
      session.client.end(false, { properties: { sessionExpiryInterval: 0 } }, done);
      return;
    }
    session.client.end(false, {}, () => {
      if (this.closed) return;
      const clean = mqtt.connect(this.opts.url, { ...session.options, clean: true, reconnectPeriod: 0 });
      this.cleaners.add(clean);
      clean.on('error', () => undefined); // without a connection there is nothing to end; next start tries again
      clean.once('connect', () => clean.end());
      clean.once('close', () => {
        this.cleaners.delete(clean);
        done();
      });
    });
  }

  private attach(session: Session): void {
    const { client } = session;
    client.handleMessage = (packet, cb): void => this.onPublish(session, packet, cb);
    // Connected once the subscription is granted (a persistent session may deliver before that).
    client.on('connect', (connack: IConnackPacket) => this.subscribe(session, connack.sessionPresent));
    client.on('reconnect', () => this.setState(session, 'connecting'));
    client.on('close', () => {
      this.dropConnection(session);
      if (session.state !== 'closed') this.setState(session, 'disconnected');
    });
    client.on('error', (err) => {
      this.lastError = err.message;
      this.sink.error(err);
      this.sink.changed();
    });
  }

  /**
   * Subscribes on every connect. A resumed session keeps the subscriptions of an earlier configuration of
   * this node (one session without a group, or several with the derived group): those are removed once the
   * current one is granted, so no reading arrives twice on one session and none is missed meanwhile.
   */
  private subscribe(session: Session, resumed: boolean): void {
    session.client.subscribe(this.subscription, { qos: 1 }, (err, granted) => {
      const refused = err ? err.message : granted?.[0] && granted[0].qos > 2 ? 'refused' : undefined;
      if (refused !== undefined) {
        this.lastError = `subscription ${this.subscription}: ${refused}`;
        this.sink.error(new Error(this.lastError));
        this.sink.changed();
        return;
      }
      if (resumed && this.otherForms.length > 0) session.client.unsubscribe(this.otherForms);
      this.setState(session, 'connected');
    });
  }

  private onPublish(session: Session, packet: IPublishPacket, cb: (err?: Error) => void): void {
    // Closing: neither pass it on nor acknowledge it; the broker redelivers it to the next session.
    if (session.state === 'closed') return cb(ACK_HELD);
    this.received++;
    const stream = session.client.stream;
    if (session.conn?.stream !== stream) {
      this.dropConnection(session);
      session.conn = new ConnectionAcks(
        stream,
        () => session.client.connected && session.client.stream === stream && !stream.destroyed,
        (c, outcome) => this.settled(session, c, outcome),
      );
    }
    const conn = session.conn;
    let ackId: number | null = null;
    if (packet.qos === 1 && packet.messageId !== undefined) {
      ackId = conn.hold(packet.messageId, this.opts.ackTimeoutMs);
      this.countHeld(1);
    }
    const topic = packet.topic;
    const payload = this.opts.payloadFormat === 'buffer' ? packet.payload : packet.payload.toString();
    const outcome = this.auth.authenticate({ topic });
    if (outcome.ok && outcome.device) {
      if (this.batcher) this.batcher.push(outcome.device, payload, ackId);
      else this.sink.reading({ topic, payload, device: outcome.device, kind: 'telemetry', ackId });
    } else if (!outcome.ok) {
      const r = rejection('auth', outcome.code, outcome.reason, { topic });
      this.sink.refused({ topic, payload, ackId, rejection: r });
    }
    if (ackId === null) return cb();
    if (conn.size < this.opts.maxHeld) return cb(ACK_HELD);
    session.resume = () => cb(ACK_HELD);
    this.sink.changed();
  }

  private settled(session: Session, conn: ConnectionAcks, outcome: AckOutcome): void {
    if (conn !== session.conn) return;
    if (outcome === 'failed') return this.writeFailed(session);
    if (outcome === 'timeout') {
      this.timeouts++;
      ackTimeoutsTotal.labels(EXTERNAL_MQTT_SOURCE).inc();
      this.sink.changed();
    } else if (session.failuresInRow > 0) {
      session.failuresInRow = 0;
      session.client.options.reconnectPeriod = this.baseReconnectMs;
    }
    const released = conn.release();
    if (released === 0) return;
    this.countHeld(-released);
    if (session.resume && conn.size < this.opts.maxHeld) {
      const resume = session.resume;
      session.resume = undefined;
      resume();
      this.sink.changed();
    }
  }

  /** The spool could not take a reading: acknowledge nothing more on this session, reconnect later. */
  private writeFailed(session: Session): void {
    this.failures++;
    session.failuresInRow++;
    ackFailuresTotal.labels(EXTERNAL_MQTT_SOURCE).inc();
    this.lastError = 'the writer could not store readings (spool or disk full): reconnecting';
    session.client.options.reconnectPeriod = Math.min(
      this.baseReconnectMs * 2 ** (session.failuresInRow - 1),
      MAX_RECONNECT_MS,
    );
    this.dropConnection(session);
    session.client.stream.destroy();
    this.sink.changed();
  }

  /** Forgets what the session's current connection holds: the broker redelivers it on the next connection. */
  private dropConnection(session: Session): void {
    const conn = session.conn;
    if (!conn) return;
    session.conn = undefined;
    this.countHeld(-conn.size);
    ackLedger.forget(conn);
    // The pending batch goes on: other sessions' readings are in it too. This connection's readings in it may
    // be stored besides the broker's redelivery (at least once); their forgotten ids settle nothing.
    const resume = session.resume;
    session.resume = undefined;
    resume?.();
  }

  private countHeld(delta: number): void {
    this.heldDelta += delta;
    if (this.heldDeltaScheduled) return;
    this.heldDeltaScheduled = true;
    process.nextTick(this.applyHeldDelta);
  }

  private setState(session: Session, state: ConnectionState): void {
    if (session.state === 'closed') return;
    session.state = state;
    if (state === 'connected' && this.sessions.every((s) => s.state === 'connected'))
      this.lastError = undefined;
    this.sink.changed();
  }
}
