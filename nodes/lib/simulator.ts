import { EventEmitter } from 'node:events';
import { DeviceClient } from './device-client';
import type { DeviceRecord } from './device-contracts';
import { isValidDeviceId } from './device-id';
import { SimulatedSensor } from './simulated-signal';

/** The registry operations the simulator needs (Registry satisfies it). */
export interface SimulatorRegistry {
  getDevice(id: string): DeviceRecord | undefined;
  createDevice(input: { id: string; type: string; name?: string }): { token: string };
  rotateToken(id: string, graceMs?: number): { token: string };
}

export interface SimulatorOptions {
  /** The broker's URL, e.g. mqtt://127.0.0.1:1883. */
  url: string;
  /** How many devices: ids are `${idPrefix}-1` … `${idPrefix}-${count}`. */
  count: number;
  idPrefix: string;
  /** The device type they are registered with. */
  type: string;
  /** Telemetry period per device, ms (a `set-interval` command changes it for that device). */
  intervalMs: number;
  /** Seed of the first device's signal (device i uses seed + i): the same run gives the same readings. */
  seed?: number;
  topicPrefix?: string;
}

export interface SimulatorStats {
  devices: number;
  connected: number;
  commands: number;
}

/** At most this many simulated devices in one process: each is a real MQTT connection. */
export const MAX_SIMULATED_DEVICES = 1000;

/** What a DeviceSimulator emits. */
export interface DeviceSimulatorEvents {
  /** A device executed a command. */
  command: [command: { deviceId: string; id: string; name: string }];
  /** A device's connection trouble; emitted only while someone listens (devices keep reconnecting). */
  error: [err: Error];
}

/**
 * Runs `count` simulated devices against a broker: each is provisioned in the registry (created, or given a
 * fresh token by rotation when it already exists; tokens live only in memory), connects with the reference
 * device client, sends readings of a simulated sensor (diurnal signal with noise, spikes, stuck periods,
 * dropouts and missing values) and executes commands. Events in `DeviceSimulatorEvents`.
 */
export class DeviceSimulator extends EventEmitter<DeviceSimulatorEvents> {
  private readonly clients: DeviceClient[] = [];
  private commands = 0;

  constructor(
    private readonly registry: SimulatorRegistry,
    private readonly opts: SimulatorOptions,
  ) {
    super();
    if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > MAX_SIMULATED_DEVICES)
      throw new Error(`count must be a whole number from 1 to ${MAX_SIMULATED_DEVICES}`);
    if (!isValidDeviceId(`${opts.idPrefix}-${opts.count}`))
      throw new Error(`"${opts.idPrefix}" does not make valid device ids (A-Z a-z 0-9 _ . : -)`);
    if (!Number.isFinite(opts.intervalMs) || opts.intervalMs < 100)
      throw new Error('the interval must be at least 100 ms');
  }

  /** Provisions every device and connects it; resolves once every device is connected. */
  async start(): Promise<void> {
    for (let i = 1; i <= this.opts.count; i++) {
      const id = `${this.opts.idPrefix}-${i}`;
      const token = this.registry.getDevice(id)
        ? this.registry.rotateToken(id, 0).token // the previous run's token is gone with that run
        : this.registry.createDevice({ id, type: this.opts.type, name: `simulated ${i}` }).token;
      const sensor = new SimulatedSensor((this.opts.seed ?? 1) + i);
      const client = new DeviceClient({
        url: this.opts.url,
        deviceId: id,
        token,
        prefix: this.opts.topicPrefix,
        telemetryIntervalMs: this.opts.intervalMs,
        reading: (ts) => {
          const r = sensor.next(ts);
          if (!r) return undefined; // a dropout: the device is silent
          const reading: Record<string, unknown> = { ts: r.ts, led: client.led.on };
          if (r.temperature !== null) reading.temperature = r.temperature;
          if (r.humidity !== null) reading.humidity = r.humidity;
          return reading;
        },
      });
      client.on('executed', (cmd) => {
        this.commands++;
        this.emit('command', { deviceId: id, id: cmd.id, name: cmd.name });
      });
      client.on('error', (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      });
      this.clients.push(client);
    }
    await Promise.all(this.clients.map((c) => c.ready()));
  }

  stats(): SimulatorStats {
    return {
      devices: this.clients.length,
      connected: this.clients.filter((c) => c.client.connected).length,
      commands: this.commands,
    };
  }

  /** Disconnects every device politely (status offline, no last will). */
  async stop(): Promise<void> {
    const clients = this.clients.splice(0);
    await Promise.all(clients.map((c) => c.stop().catch(() => undefined)));
  }
}
