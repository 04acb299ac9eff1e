import { EventEmitter, once } from 'node:events';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { DeviceLink, DeviceLinkEvents, DeviceMessage } from '../device-contracts';
import { isValidDeviceId } from '../device-id';
import type { CommandPublishOptions } from './dispatcher';

export interface MqttLinkOptions {
  url: string;
  username?: string;
  password?: string;
  /** Unique per backend instance: two clients with one id keep kicking each other off the broker. */
  clientId: string;
  /** 5, 4 (= 3.1.1), or 'auto': MQTT 5 and 3.1.1 when the broker refuses 5. */
  protocol?: 5 | 4 | 'auto';
  /** Topic prefix, default `devices`. */
  prefix?: string;
  /** Extra mqtt.js options (TLS material, keepalive). */
  clientOptions?: IClientOptions;
}

/**
 * What an MqttDeviceLink emits: the `DeviceLink` events ('subscribed' when the device reported itself online;
 * never 'delivered': a client does not see the device's PUBACK), plus its own connection to the broker.
 */
export interface MqttLinkEvents extends DeviceLinkEvents {
  /** Connected to the broker (again). */
  connect: [];
  /** Lost the broker: every device counts as offline until its status arrives again. */
  disconnect: [];
  error: [error: Error];
}

/** CONNACK codes that mean "I do not speak this protocol version": 0x84 in MQTT 5, 1 in 3.1.1. */
const UNSUPPORTED_PROTOCOL = new Set([132, 1]);

/**
 * A `DeviceLink` over an external MQTT broker (e.g. Mosquitto) with mqtt.js.
 *
 * Presence: an external broker does not tell other clients who is connected, so a device reports it itself —
 * it publishes a retained `devices/{id}/status` with `"online": true` when it connects and sets a retained last
 * will with `"online": false` (the reference device client does both). When this link loses the broker every
 * device counts as offline until its status arrives again. Acks arrive on `devices/{id}/commands/ack`; the
 * device id is taken from the topic, so the broker's ACL must allow a client to publish only under its own id
 * (Mosquitto: `pattern write devices/%u/#`) — see docs/commands.md.
 *
 * MQTT 5: commands carry a response topic, correlation data (the command id) and a message expiry.
 */
export class MqttDeviceLink extends EventEmitter<MqttLinkEvents> implements DeviceLink {
  private client: MqttClient;
  private readonly online = new Set<string>();
  private readonly prefix: string;
  private protocolVersion: 5 | 4;
  private ended = false;
  /** The broker refused the last CONNECT: mqtt.js does not retry after that, so ready() must not wait. */
  private refusal: Error | undefined;

  constructor(private readonly opts: MqttLinkOptions) {
    super();
    this.prefix = opts.prefix ?? 'devices';
    this.protocolVersion = opts.protocol === 4 ? 4 : 5;
    this.client = this.connect();
  }

  /** The protocol in use: 5 or 4 (3.1.1). */
  get protocol(): 5 | 4 {
    return this.protocolVersion;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Resolves once connected and subscribed (or at once when already so); rejects when the broker refused us. */
  async ready(): Promise<void> {
    if (this.client.connected) return;
    if (this.refusal) throw this.refusal;
    await once(this, 'connect');
  }

  isOnline(deviceId: string): boolean {
    return this.online.has(deviceId);
  }

  /** The device reports itself online (retained status) only after it has subscribed to its commands. */
  isSubscribed(deviceId: string): boolean {
    return this.online.has(deviceId);
  }

  async publishToDevice(
    deviceId: string,
    subtopic: string,
    payload: Buffer | string,
    opts: { qos: 0 | 1 } | CommandPublishOptions,
  ): Promise<void> {
    const publishOpts: IClientPublishOptions = { qos: opts.qos };
    if (this.protocolVersion === 5 && 'correlationId' in opts) {
      publishOpts.properties = {
        responseTopic: `${this.prefix}/${deviceId}/commands/ack`,
        correlationData: Buffer.from(opts.correlationId),
        messageExpiryInterval: Math.max(1, Math.ceil((opts.expiresAt - Date.now()) / 1000)),
      };
    }
    await this.client.publishAsync(`${this.prefix}/${deviceId}/${subtopic}`, payload, publishOpts);
  }

  async end(): Promise<void> {
    this.ended = true;
    await this.client.endAsync(true);
  }

  private connect(): MqttClient {
    const client = mqtt.connect(this.opts.url, {
      ...this.opts.clientOptions,
      clientId: this.opts.clientId,
      username: this.opts.username,
      password: this.opts.password,
      protocolVersion: this.protocolVersion,
      clean: true,
      reconnectPeriod: 1000,
    });
    client.on('connect', () => {
      this.refusal = undefined;
      client.subscribe([`${this.prefix}/+/status`, `${this.prefix}/+/commands/ack`], { qos: 1 }, (err) => {
        if (err) this.fault(err);
        else this.emit('connect');
      });
    });
    client.on('close', () => this.lostBroker());
    client.on('error', (err: Error & { code?: number }) => {
      if (
        this.opts.protocol === 'auto' &&
        this.protocolVersion === 5 &&
        UNSUPPORTED_PROTOCOL.has(err.code ?? -1)
      ) {
        // The broker speaks 3.1.1 only: reconnect with it; commands then carry their id in the payload only.
        this.protocolVersion = 4;
        client.removeAllListeners();
        client.end(true);
        if (!this.ended) this.client = this.connect();
        return;
      }
      if (typeof err.code === 'number' && !client.connected) {
        // A refused CONNACK; with MQTT 5 forced, say why and what to choose instead of a bare reason code.
        this.refusal =
          this.protocolVersion === 5 && UNSUPPORTED_PROTOCOL.has(err.code)
            ? Object.assign(
                new Error(`The broker does not accept MQTT 5 (${err.message}); use protocol auto or 3.1.1`),
                { code: err.code },
              )
            : err;
        return this.fault(this.refusal);
      }
      this.fault(err);
    });
    client.on('message', (topic, payload) => this.receive(topic, payload));
    return client;
  }

  /** Broker trouble is an 'error' event for whoever shows it (the node status); mqtt.js keeps reconnecting. */
  private fault(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private lostBroker(): void {
    const wasOnline = [...this.online];
    this.online.clear();
    for (const id of wasOnline) this.emit('offline', id);
    this.emit('disconnect');
  }

  private receive(topic: string, payload: Buffer): void {
    const parts = topic.split('/');
    if (parts.length < 3 || parts[0] !== this.prefix || !isValidDeviceId(parts[1])) return;
    const deviceId = parts[1];
    const kind = parts.slice(2).join('/');
    if (kind === 'status') {
      let online = false;
      try {
        online = (JSON.parse(payload.toString()) as { online?: unknown }).online === true;
      } catch {
        return;
      }
      if (online && !this.online.has(deviceId)) {
        this.online.add(deviceId);
        this.emit('online', deviceId);
        this.emit('subscribed', deviceId);
      } else if (!online && this.online.delete(deviceId)) this.emit('offline', deviceId);
      return;
    }
    const msg: DeviceMessage = { device: { id: deviceId, type: '' }, topic, kind, payload };
    this.emit('message', msg);
  }
}
