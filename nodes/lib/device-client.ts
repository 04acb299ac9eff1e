import { EventEmitter } from 'node:events';
import mqtt, {
  type IClientOptions,
  type IClientPublishOptions,
  type IPublishPacket,
  type MqttClient,
} from 'mqtt';

/** How the reference device answers commands; the last three exist to test the backend's handling of bad devices. */
export type DeviceBehaviour = 'normal' | 'never-ack' | 'ack-late' | 'fail';

export interface DeviceClientOptions {
  url: string;
  deviceId: string;
  token: string;
  prefix?: string;
  /** 5 or 4 (3.1.1). Default 4: every broker speaks it (aedes only speaks 3.1.1). */
  protocol?: 5 | 4;
  behaviour?: DeviceBehaviour;
  /** Delay of the final ack in 'ack-late' mode, ms. */
  lateMs?: number;
  /** Telemetry period, ms; 0 sends none until `set-interval` asks for it. */
  telemetryIntervalMs?: number;
  /** The periodic reading at time `ts` (default: a random temperature and the LED state); undefined sends none. */
  reading?: (ts: number) => Record<string, unknown> | undefined;
  /** Send an "accepted" ack before the final one (default true). */
  ackAccepted?: boolean;
  /**
   * Take part in the device twin (docs/twin.md): subscribe to `twin/desired`, apply it and report what was
   * applied on `twin/reported`. Default false (a broker without twins refuses the subscription).
   */
  twin?: boolean;
  clientOptions?: IClientOptions;
}

export interface ReceivedCommand {
  id: string;
  name: string;
  params?: Record<string, unknown>;
  expiresAt?: number;
}

interface Ack {
  id: string;
  status: 'accepted' | 'succeeded' | 'failed' | 'rejected';
  result?: unknown;
  error?: string;
}

/**
 * CONNACK codes that refuse the device itself: MQTT 3.1.1 2 (identifier rejected), 4 (bad user name or
 * password), 5 (not authorized); MQTT 5 0x85, 0x86, 0x87, 0x8c. Code 3 (server unavailable, also a lockout)
 * and dropped connections are worth a retry.
 */
const CREDENTIAL_REFUSALS = new Set([2, 4, 5, 0x85, 0x86, 0x87, 0x8c]);

function isCredentialRefusal(err: Error): boolean {
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'number' && CREDENTIAL_REFUSALS.has(code);
}

/** The desired document the backend sends on `devices/{id}/twin/desired`. */
export interface DesiredDoc {
  state: Record<string, unknown>;
  version: number;
}

/**
 * Applies one desired key; returns the value to report for it, or undefined to report nothing now (the
 * handler reports later itself, e.g. after a download, with `reportTwin`).
 */
export type DesiredHandler = (value: unknown, key: string) => unknown;

/** How many answered command ids the device remembers to dedupe re-sends. */
const DEDUPE_SIZE = 1000;

/** What a DeviceClient emits. */
export interface DeviceClientEvents {
  /** Connected, subscribed and announced online (again after each reconnect). */
  connect: [];
  /** Every command received, a re-sent one too. */
  command: [cmd: ReceivedCommand];
  /** Every command executed (a re-sent id is answered, not executed again). */
  executed: [cmd: ReceivedCommand];
  /** A desired document was applied. */
  desired: [doc: DesiredDoc];
  /** The broker accepted a reported-state patch. */
  reported: [patch: Record<string, unknown>];
  /** A `reboot` command ran. */
  reboot: [];
  /** Connection trouble; emitted only while someone listens (the device keeps reconnecting). */
  error: [err: Error];
}

/**
 * The reference device: connects with its token (username = client id = device id), reports presence through a
 * retained status and last will, sends telemetry, executes `reboot`, `set-interval` and `led`, and acks them on
 * `devices/{id}/commands/ack` (or the MQTT 5 response topic, with the correlation data). A command id it has
 * already seen is not executed again: its final ack is sent again instead.
 *
 * With `twin`, it applies its desired state: `intervalMs` sets the telemetry period, a key with a handler
 * (`onDesired`) goes to it, any other key is kept in `config`; then it reports the applied values. A desired
 * document older than the one applied last is ignored. Events in `DeviceClientEvents`.
 */
export class DeviceClient extends EventEmitter<DeviceClientEvents> {
  readonly client: MqttClient;
  behaviour: DeviceBehaviour;
  /** Executions per command id: a test reads this to prove "one execution per id". */
  readonly executions = new Map<string, number>();
  led: { on: boolean; color?: string } = { on: false };
  /** Desired values applied (the twin's state as this device holds it, in memory). */
  readonly config: Record<string, unknown> = {};
  /** Version of the desired document applied last (0: none yet). */
  desiredVersion = 0;
  private readonly desiredHandlers = new Map<string, DesiredHandler>();
  private intervalMs: number;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private readonly answered = new Map<string, Ack>();
  private readonly lateTimers = new Set<NodeJS.Timeout>();
  private readonly prefix: string;

  constructor(private readonly opts: DeviceClientOptions) {
    super();
    this.prefix = opts.prefix ?? 'devices';
    this.behaviour = opts.behaviour ?? 'normal';
    this.intervalMs = opts.telemetryIntervalMs ?? 0;
    const status = (online: boolean): string => JSON.stringify({ online, firmware: '1.0.0' });
    this.client = mqtt.connect(opts.url, {
      reconnectPeriod: 500,
      ...opts.clientOptions,
      clientId: opts.deviceId,
      username: opts.deviceId,
      password: opts.token,
      protocolVersion: opts.protocol ?? 4,
      clean: true,
      will: { topic: this.topic('status'), payload: Buffer.from(status(false)), qos: 1, retain: true },
    });
    this.client.on('connect', () => {
      // Subscribe before announcing presence, so a command sent on "online" finds the subscription.
      const topics = opts.twin
        ? [this.topic('commands'), this.topic('twin/desired')]
        : this.topic('commands');
      this.client.subscribe(topics, { qos: 1 }, (err) => {
        if (err) return this.fault(err);
        this.client.publish(this.topic('status'), status(true), { qos: 1, retain: true }, () =>
          this.emit('connect'),
        );
      });
    });
    this.client.on('message', (topic, payload, packet) => this.receive(topic, payload, packet));
    this.client.on('error', (err) => this.fault(err));
    this.scheduleTelemetry();
  }

  get deviceId(): string {
    return this.opts.deviceId;
  }

  /**
   * Resolves once connected, subscribed and announced, after however many attempts (a connection the broker's
   * rate limit drops is retried); rejects only when the broker refuses the credentials, which no retry changes.
   */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onConnect = (): void => {
        this.client.off('error', onError);
        resolve();
      };
      const onError = (err: Error): void => {
        if (!isCredentialRefusal(err)) return;
        this.off('connect', onConnect);
        this.client.off('error', onError);
        reject(err);
      };
      this.once('connect', onConnect);
      this.client.on('error', onError);
    });
  }

  /** Sends one telemetry reading now. */
  async sendTelemetry(reading: Record<string, unknown> = this.defaultReading()): Promise<void> {
    await this.client.publishAsync(this.topic('telemetry'), JSON.stringify(reading), { qos: 1 });
  }

  /** The telemetry period in use (ms; 0: none). */
  get telemetryIntervalMs(): number {
    return this.intervalMs;
  }

  /** Hands the desired key `key` to `handler` instead of keeping it in `config`. */
  onDesired(key: string, handler: DesiredHandler): void {
    this.desiredHandlers.set(key, handler);
  }

  /** Publishes a partial reported state (merged by the backend); resolves once the broker has it. */
  async reportTwin(patch: Record<string, unknown>): Promise<void> {
    await this.client.publishAsync(this.topic('twin/reported'), JSON.stringify(patch), { qos: 1 });
    this.emit('reported', patch);
  }

  /** Goes offline the polite way: status offline, then disconnect (no last will). */
  async stop(): Promise<void> {
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    for (const t of this.lateTimers) clearTimeout(t);
    this.lateTimers.clear();
    if (this.client.connected && !this.client.disconnecting) {
      // Going away anyway: wait a little for the broker to take the goodbye, never forever.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.client
          .publishAsync(this.topic('status'), JSON.stringify({ online: false }), { qos: 1, retain: true })
          .catch(() => undefined),
        new Promise((resolve) => (timer = setTimeout(resolve, 2000))),
      ]);
      clearTimeout(timer);
    }
    // Forced: QoS 1 messages still waiting for an ack (e.g. after a broker restart) must not hold us.
    await this.client.endAsync(true);
  }

  private topic(kind: string): string {
    return `${this.prefix}/${this.opts.deviceId}/${kind}`;
  }

  private defaultReading(): Record<string, unknown> {
    return { ts: Date.now(), temperature: 20 + Math.round(Math.random() * 50) / 10, led: this.led.on };
  }

  private scheduleTelemetry(): void {
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    this.telemetryTimer = undefined;
    if (this.intervalMs > 0)
      this.telemetryTimer = setInterval(() => {
        if (!this.client.connected) return;
        const reading = this.opts.reading ? this.opts.reading(Date.now()) : this.defaultReading();
        if (reading) this.sendTelemetry(reading).catch((err: unknown) => this.fault(err));
      }, this.intervalMs);
  }

  private receive(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic === this.topic('twin/desired')) return this.applyDesired(payload);
    if (topic !== this.topic('commands')) return;
    let cmd: ReceivedCommand | null;
    try {
      cmd = JSON.parse(payload.toString()) as typeof cmd;
    } catch {
      return; // not a command; nothing to answer to
    }
    if (typeof cmd?.id !== 'string' || typeof cmd.name !== 'string') return;
    const props = packet.properties;
    const reply = {
      topic: props?.responseTopic ?? this.topic('commands/ack'),
      correlationData: props?.correlationData,
    };
    this.emit('command', cmd);
    const seen = this.answered.get(cmd.id);
    if (seen) {
      this.ack(reply, seen); // a re-send: answer again, do not run twice
      return;
    }
    if (this.behaviour === 'never-ack') return;
    if (this.opts.ackAccepted !== false) this.ack(reply, { id: cmd.id, status: 'accepted' });
    const final = this.execute(cmd);
    this.remember(final);
    if (this.behaviour === 'ack-late') {
      const t = setTimeout(() => {
        this.lateTimers.delete(t);
        this.ack(reply, final);
      }, this.opts.lateMs ?? 5000);
      this.lateTimers.add(t);
    } else this.ack(reply, final);
  }

  private execute(cmd: ReceivedCommand): Ack {
    if (typeof cmd.expiresAt === 'number' && Date.now() > cmd.expiresAt)
      return { id: cmd.id, status: 'rejected', error: 'command expired before it arrived' };
    this.executions.set(cmd.id, (this.executions.get(cmd.id) ?? 0) + 1);
    this.emit('executed', cmd);
    if (this.behaviour === 'fail')
      return { id: cmd.id, status: 'failed', error: `simulated failure of ${cmd.name}` };
    const params = cmd.params ?? {};
    switch (cmd.name) {
      case 'reboot':
        // A real device would restart here; the reference device only reports it (and keeps its session, so
        // tests and the benchmark stay deterministic).
        setImmediate(() => this.emit('reboot'));
        return { id: cmd.id, status: 'succeeded', result: { rebootedAt: Date.now() } };
      case 'set-interval': {
        const ms = params.intervalMs;
        if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0)
          return { id: cmd.id, status: 'rejected', error: 'params.intervalMs must be a whole number >= 0' };
        this.intervalMs = ms;
        this.scheduleTelemetry();
        return { id: cmd.id, status: 'succeeded', result: { intervalMs: ms } };
      }
      case 'led': {
        const on = params.on;
        if (typeof on !== 'boolean')
          return { id: cmd.id, status: 'rejected', error: 'params.on must be a boolean' };
        this.led = typeof params.color === 'string' ? { on, color: params.color } : { on };
        return { id: cmd.id, status: 'succeeded', result: this.led };
      }
      default:
        return { id: cmd.id, status: 'rejected', error: `unknown command ${cmd.name}` };
    }
  }

  private applyDesired(payload: Buffer): void {
    let doc: DesiredDoc;
    try {
      doc = JSON.parse(payload.toString()) as DesiredDoc;
    } catch {
      return; // not a desired document; the backend sends only JSON
    }
    if (typeof doc.version !== 'number' || typeof doc.state !== 'object' || doc.version < this.desiredVersion)
      return;
    this.desiredVersion = doc.version;
    const report: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(doc.state)) {
      const handler = this.desiredHandlers.get(key);
      if (handler) {
        const applied = handler(value, key);
        if (applied !== undefined) report[key] = applied;
      } else if (key === 'intervalMs') {
        if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value !== this.intervalMs) {
          this.intervalMs = value;
          this.scheduleTelemetry();
        }
        report[key] = this.intervalMs; // what runs: a bad value leaves the delta open
      } else {
        this.config[key] = value;
        report[key] = value;
      }
    }
    this.emit('desired', doc);
    if (Object.keys(report).length > 0) this.reportTwin(report).catch((err: unknown) => this.fault(err));
  }

  private remember(ack: Ack): void {
    this.answered.set(ack.id, ack);
    if (this.answered.size > DEDUPE_SIZE) this.answered.delete(this.answered.keys().next().value as string);
  }

  private ack(reply: { topic: string; correlationData?: Buffer }, ack: Ack): void {
    const opts: IClientPublishOptions = { qos: 1 };
    if (reply.correlationData) opts.properties = { correlationData: reply.correlationData };
    this.client.publish(reply.topic, JSON.stringify(ack), opts, (err) => {
      if (err) this.fault(err);
    });
  }

  /** Connection trouble is reported, never thrown: the device keeps reconnecting like a real one. */
  private fault(err: unknown): void {
    if (this.listenerCount('error') > 0)
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
}
