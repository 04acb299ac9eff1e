/**
 * A stand-in for the broker's `DeviceLink`, named as such: the test decides which devices are online and
 * subscribed, sees every publication, and plays the device's side (PUBACK, acks). The real links (the embedded
 * broker, MqttDeviceLink against Mosquitto) are exercised in test/integration/commands-*.test.ts.
 */
import { EventEmitter } from 'node:events';
import type { DeviceLink, DeviceMessage } from '../../nodes/lib/device-contracts';

export interface Publication {
  deviceId: string;
  subtopic: string;
  payload: string;
  qos: 0 | 1;
}

export class FakeDeviceLink extends EventEmitter implements DeviceLink {
  readonly subscribed = new Set<string>();
  readonly published: Publication[] = [];
  /** When set, publishToDevice rejects with it (a broker that refuses or has gone). */
  failWith: Error | undefined;

  isOnline(deviceId: string): boolean {
    return this.subscribed.has(deviceId);
  }

  isSubscribed(deviceId: string): boolean {
    return this.subscribed.has(deviceId);
  }

  publishToDevice(
    deviceId: string,
    subtopic: string,
    payload: Buffer | string,
    opts: { qos: 0 | 1 },
  ): Promise<void> {
    if (this.failWith) return Promise.reject(this.failWith);
    this.published.push({ deviceId, subtopic, payload: payload.toString(), qos: opts.qos });
    return Promise.resolve();
  }

  /** The device connects and subscribes to its commands topic. */
  subscribe(deviceId: string): void {
    this.subscribed.add(deviceId);
    this.emit('subscribed', deviceId);
  }

  /** The device's connection acknowledged (PUBACK) the publication of command `id`. */
  deliver(deviceId: string, id: string): void {
    this.emit('delivered', deviceId, `devices/${deviceId}/commands`, Buffer.from(JSON.stringify({ id })));
  }

  /** The device publishes `body` on its commands/ack topic. */
  ack(deviceId: string, body: unknown): void {
    const message: DeviceMessage = {
      device: { id: deviceId, type: 'thermostat' },
      topic: `devices/${deviceId}/commands/ack`,
      kind: 'commands/ack',
      payload: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    };
    this.emit('message', message);
  }

  /** The ids of the commands published to `deviceId`, in order. */
  commandIds(deviceId: string): string[] {
    return this.published
      .filter((p) => p.deviceId === deviceId)
      .map((p) => (JSON.parse(p.payload) as { id: string }).id);
  }
}
