import type { Writable } from 'node:stream';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
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
 * The node subscribes at QoS 1 with a persistent session (clean=false; MQTT 5 session expiry) and a stable
 * client id, so the broker keeps and redelivers every publication we have not acknowledged — after a crash,
 * a restart or a dropped connection. Each publication's PUBACK is held in the ack ledger until a writer has
 * the reading (or its rejection event) in the durable spool.
 *
 * How the PUBACK is held without serialising ingest: mqtt.js handles incoming packets strictly one at a
 * time; for QoS 1 it calls `handleMessage(packet, cb)` (public, overridable) and writes the PUBACK only in
 * `cb`, taking the next packet after that. Deferring `cb` would therefore allow one reading per spool
 * round-trip. Instead `handleMessage` calls `cb` at once with an error (`ACK_HELD`): mqtt.js then skips its
 * own PUBACK and goes on with the next packet (handlers/publish.js, mqtt.js 5.16). We write the PUBACK later,
 * through the same internal `_sendPacket` mqtt.js itself uses — the one private method relied on, checked
 * when the client is created and covered by the tests against the installed mqtt.js and a real Mosquitto.
 * PUBACKs leave in the order the publications arrived (MQTT 4.6: QoS 1 acks in receive order), so a
 * settled reading waits for the ones received before it.
 *
 * Backpressure: the broker sends at most `receiveMaximum` unacknowledged publications (MQTT 5; for 3.1.1
 * the broker's own in-flight limit, e.g. Mosquitto `max_inflight_messages`). If held acks still reach
 * `maxHeld`, `handleMessage`'s callback is withheld until they drop below it: mqtt.js stops reading the
 * socket, TCP pushes back on the broker, and the heap does not grow with the size of a burst.
 *
 * Outcomes (ack-ledger.ts): `stored` and `timeout` release the PUBACK (a timeout is counted); `failed` (the
 * spool could not take it) drops the connection without acknowledging, so the broker redelivers everything
 * unacknowledged when we reconnect, after a delay that doubles with each failure in a row.
 */

/** The label of this path in the shared ingest metrics. */
export const EXTERNAL_MQTT_SOURCE = 'external-mqtt';

/** Passed to `handleMessage`'s callback: mqtt.js then writes no PUBACK; we write it once the reading is durable. */
const ACK_HELD = new Error('acknowledgement held until the reading is durable');

const MAX_RECONNECT_MS = 30_000;

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
  /** MQTT 5: how long the broker keeps the session (and queues for it) while we are away. */
  sessionExpiryS: number;
  /** MQTT 5: unacknowledged publications the broker may send us at once. */
  receiveMaximum: number;
  /** Held acknowledgements at which we stop reading from the broker. */
  maxHeld: number;
  ackTimeoutMs: number;
  /** Publications per message; 1 sends each publication as a message of its own. */
  batchSize: number;
  batchWaitMs: number;
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
  state: ConnectionState;
  held: number;
  /** Reading from the broker is paused: `maxHeld` acknowledgements are held. */
  paused: boolean;
  received: number;
  timeouts: number;
  failures: number;
  lastError?: string;
}

interface HeldAck {
  messageId: number;
  ready: boolean;
}

/** The acknowledgements held on one connection, released in receive order. */
class ConnectionAcks implements AckOwner {
  private queue: HeldAck[] = [];
  private head = 0;
  private readonly byId = new Map<number, HeldAck>();

  constructor(
    readonly stream: Writable,
    private readonly onSettled: (conn: ConnectionAcks, outcome: AckOutcome) => void,
  ) {}

  get size(): number {
    return this.queue.length - this.head;
  }

  hold(messageId: number, timeoutMs: number): number {
    const id = ackLedger.hold(this, timeoutMs);
    const held = { messageId, ready: false };
    this.queue.push(held);
    this.byId.set(id, held);
    return id;
  }

  settled(id: number, outcome: AckOutcome): void {
    const held = this.byId.get(id);
    if (!held) return;
    this.byId.delete(id);
    held.ready = outcome !== 'failed';
    this.onSettled(this, outcome);
  }

  /** Message ids whose PUBACK may go now: the ready ones at the head of the queue. */
  releasable(send: (messageId: number) => void): number {
    let n = 0;
    while (this.head < this.queue.length && this.queue[this.head].ready) {
      send(this.queue[this.head].messageId);
      this.head++;
      n++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return n;
  }
}

/** The subscription for the options: `[$share/{group}/]{prefix}/+/telemetry`. */
export function telemetrySubscription(
  opts: Pick<ExternalMqttOptions, 'topicPrefix' | 'sharedGroup'>,
): string {
  const level = /^[^/+#$][^/+#]*$/;
  if (!level.test(opts.topicPrefix))
    throw new Error(`topic prefix "${opts.topicPrefix}" must be one topic level without wildcards`);
  if (opts.sharedGroup && !level.test(opts.sharedGroup))
    throw new Error(`shared group "${opts.sharedGroup}" must be one topic level without wildcards`);
  const share = opts.sharedGroup ? `$share/${opts.sharedGroup}/` : '';
  return `${share}${opts.topicPrefix}/+/telemetry`;
}

type SendPacket = (packet: { cmd: 'puback'; messageId: number; reasonCode: number }) => void;

export class ExternalMqttIngest {
  readonly subscription: string;
  private readonly client: MqttClient;
  private readonly auth: Authenticator;
  private readonly batcher: MicroBatcher | undefined;
  private readonly heldGauge = acksHeld.labels(EXTERNAL_MQTT_SOURCE);
  private readonly baseReconnectMs: number;
  private conn: ConnectionAcks | undefined;
  /** `handleMessage`'s callback, withheld while `maxHeld` acks are held. */
  private resume: (() => void) | undefined;
  private corked: Writable | undefined;
  private state: ConnectionState = 'connecting';
  private lastError: string | undefined;
  private received = 0;
  private timeouts = 0;
  private failures = 0;
  private failuresInRow = 0;

  constructor(
    registry: Registry,
    private readonly opts: ExternalMqttOptions,
    private readonly sink: ExternalMqttSink,
  ) {
    this.subscription = telemetrySubscription(opts);
    this.auth = new Authenticator(registry, { mode: 'topic', topicPrefix: opts.topicPrefix });
    this.baseReconnectMs = opts.reconnectMs ?? 1000;
    if (opts.batchSize > 1)
      this.batcher = new MicroBatcher({ maxCount: opts.batchSize, maxWaitMs: opts.batchWaitMs }, (b) =>
        sink.reading(b),
      );
    const options: IClientOptions = {
      clientId: opts.clientId,
      clean: false,
      protocolVersion: opts.protocolVersion,
      reconnectPeriod: this.baseReconnectMs,
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
    };
    this.client = mqtt.connect(opts.url, options);
    if (typeof (this.client as unknown as { _sendPacket?: unknown })._sendPacket !== 'function') {
      this.client.end(true);
      throw new Error('this mqtt.js has no _sendPacket: iotb-mqtt-in needs mqtt 5.16 (see package.json)');
    }
    this.client.handleMessage = (packet, cb) => this.onPublish(packet, cb);
    // Connected once the subscription is granted (a persistent session may deliver before that).
    this.client.on('connect', () => {
      this.client.subscribe(this.subscription, { qos: 1 }, (err, granted) => {
        const refused = err ? err.message : granted?.[0] && granted[0].qos > 2 ? 'refused' : undefined;
        if (refused === undefined) return this.setState('connected');
        this.lastError = `subscription ${this.subscription}: ${refused}`;
        this.sink.error(new Error(this.lastError));
        this.sink.changed();
      });
    });
    this.client.on('reconnect', () => this.setState('connecting'));
    this.client.on('close', () => {
      this.dropConnection();
      if (this.state !== 'closed') this.setState('disconnected');
    });
    this.client.on('error', (err) => {
      this.lastError = err.message;
      this.sink.error(err);
      this.sink.changed();
    });
  }

  snapshot(): ExternalMqttSnapshot {
    const s: ExternalMqttSnapshot = {
      state: this.state,
      held: this.conn?.size ?? 0,
      paused: this.resume !== undefined,
      received: this.received,
      timeouts: this.timeouts,
      failures: this.failures,
    };
    if (this.lastError !== undefined && this.state !== 'connected') s.lastError = this.lastError;
    return s;
  }

  /** Disconnects; held acknowledgements are forgotten, so the broker redelivers those readings later. */
  close(): Promise<void> {
    this.state = 'closed';
    this.batcher?.discard();
    this.dropConnection();
    return new Promise((resolve) => this.client.end(false, {}, () => resolve()));
  }

  private onPublish(packet: IPublishPacket, cb: (err?: Error) => void): void {
    // Closing: neither pass it on nor acknowledge it; the broker redelivers it to the next session.
    if (this.state === 'closed') return cb(ACK_HELD);
    this.received++;
    const stream = this.client.stream as unknown as Writable;
    if (this.conn?.stream !== stream) {
      this.dropConnection();
      this.conn = new ConnectionAcks(stream, (c, outcome) => this.settled(c, outcome));
    }
    const conn = this.conn;
    let ackId: number | null = null;
    if (packet.qos === 1 && packet.messageId !== undefined) {
      ackId = conn.hold(packet.messageId, this.opts.ackTimeoutMs);
      this.heldGauge.inc();
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
    this.resume = () => cb(ACK_HELD);
    this.sink.changed();
  }

  private settled(conn: ConnectionAcks, outcome: AckOutcome): void {
    if (conn !== this.conn) return;
    if (outcome === 'failed') return this.writeFailed();
    if (outcome === 'timeout') {
      this.timeouts++;
      ackTimeoutsTotal.labels(EXTERNAL_MQTT_SOURCE).inc();
      this.sink.changed();
    } else if (this.failuresInRow > 0) {
      this.failuresInRow = 0;
      this.client.options.reconnectPeriod = this.baseReconnectMs;
    }
    const released = conn.releasable((messageId) => this.puback(conn, messageId));
    if (released === 0) return;
    this.heldGauge.dec(released);
    if (this.resume && conn.size < this.opts.maxHeld) {
      const resume = this.resume;
      this.resume = undefined;
      resume();
      this.sink.changed();
    }
  }

  private puback(conn: ConnectionAcks, messageId: number): void {
    if (!this.client.connected || this.client.stream !== (conn.stream as unknown)) return;
    // Many PUBACKs settle in one tick (a batch reached the spool): one write for all of them.
    if (this.corked !== conn.stream) {
      this.corked = conn.stream;
      conn.stream.cork();
      process.nextTick(() => {
        this.corked = undefined;
        conn.stream.uncork();
      });
    }
    (this.client as unknown as { _sendPacket: SendPacket })._sendPacket({
      cmd: 'puback',
      messageId,
      reasonCode: 0,
    });
  }

  /** The spool could not take a reading: acknowledge nothing more on this connection, reconnect later. */
  private writeFailed(): void {
    this.failures++;
    this.failuresInRow++;
    ackFailuresTotal.labels(EXTERNAL_MQTT_SOURCE).inc();
    this.lastError = 'the writer could not store readings (spool or disk full): reconnecting';
    this.client.options.reconnectPeriod = Math.min(
      this.baseReconnectMs * 2 ** (this.failuresInRow - 1),
      MAX_RECONNECT_MS,
    );
    this.dropConnection();
    (this.client.stream as unknown as { destroy(): void }).destroy();
    this.sink.changed();
  }

  /** Forgets what the current connection holds: the broker redelivers it on the next connection. */
  private dropConnection(): void {
    const conn = this.conn;
    if (!conn) return;
    this.conn = undefined;
    this.heldGauge.dec(conn.size);
    ackLedger.forget(conn);
    this.batcher?.discard();
    const resume = this.resume;
    this.resume = undefined;
    resume?.();
  }

  private setState(state: ConnectionState): void {
    if (this.state === 'closed') return;
    this.state = state;
    if (state === 'connected') this.lastError = undefined;
    this.sink.changed();
  }
}
