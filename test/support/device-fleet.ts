/**
 * Many reference devices (nodes/lib/device-client.ts) against one embedded broker from one address, and a broker
 * restart on the same port: what the reconnect-storm test and bench/reconnect.ts both run.
 */
import { join } from 'node:path';
import { DeviceBroker, type BrokerLimits } from '../../nodes/lib/broker/broker';
import { DeviceClient } from '../../nodes/lib/device-client';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import type { SecurityEvent } from '../../nodes/lib/security-events';
import { freePort, tempDir } from './servers';

export interface FleetBroker {
  registry: Registry;
  url: string;
  port: number;
  broker: DeviceBroker;
  /** Security events of every broker instance so far (rate_limited, lockout, auth_failure, ...). */
  security: SecurityEvent[];
  /** Closes the broker (devices lose their connections) and starts a new one on the same port and registry. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** A registry with `devices` devices `dev-0…` (type `sensor`) and a broker on 127.0.0.1 with `limits`. */
export async function startFleetBroker(devices: number, limits: Partial<BrokerLimits> = {}) {
  const dir = tempDir('fleet');
  const registry = new Registry(
    new FileDeviceStore(join(dir.path, 'registry.json')),
    'fleet-registry-secret-0123456789abcdef',
  );
  registry.putType({ name: 'sensor' });
  const tokens = new Map<string, string>();
  for (let i = 0; i < devices; i++)
    tokens.set(`dev-${i}`, registry.createDevice({ id: `dev-${i}`, type: 'sensor' }).token);
  const port = await freePort();
  const security: SecurityEvent[] = [];
  const start = async (): Promise<DeviceBroker> => {
    const b = await DeviceBroker.start({ registry, limits }, { host: '127.0.0.1', port });
    b.on('security', (ev: SecurityEvent) => security.push(ev));
    return b;
  };
  const fleet: FleetBroker = {
    registry,
    url: `mqtt://127.0.0.1:${port}`,
    port,
    broker: await start(),
    security,
    async restart() {
      await fleet.broker.close();
      fleet.broker = await start();
    },
    async close() {
      await fleet.broker.close();
      registry.close();
      dir.remove();
    },
  };
  return { fleet, tokens };
}

export interface Fleet {
  clients: DeviceClient[];
  /** Each device's latest (re)connect time, ms. */
  lastConnect: Map<string, number>;
  /** Devices whose latest connect is at or after `t`. */
  connectedSince(t: number): number;
  stop(): Promise<void>;
}

/**
 * One reference client per device, all started at once from 127.0.0.1; `ready` is each client's `ready()`,
 * taken before any of them can connect.
 */
export function connectFleet(
  url: string,
  tokens: Map<string, string>,
): { fleet: Fleet; ready: Promise<void> } {
  const lastConnect = new Map<string, number>();
  const clients = [...tokens].map(([deviceId, token]) => {
    const c = new DeviceClient({ url, deviceId, token });
    c.on('connect', () => lastConnect.set(deviceId, Date.now()));
    c.on('error', () => undefined); // dropped connections and a restarting broker: the client retries
    return c;
  });
  const ready = Promise.all(clients.map((c) => c.ready())).then(() => undefined);
  return {
    ready,
    fleet: {
      clients,
      lastConnect,
      connectedSince: (t) => [...lastConnect.values()].filter((at) => at >= t).length,
      stop: async () => {
        await Promise.all(clients.map((c) => c.stop()));
      },
    },
  };
}

/** Connects refused by the per-address rate limit, as the broker's security events counted them. */
export function rateLimitedCount(security: SecurityEvent[]): number {
  return security.filter((e) => e.event === 'rate_limited').reduce((n, e) => n + (e.count ?? 1), 0);
}
