/**
 * The contracts between the identity side (registry, broker) and the nodes that use it (validate, quality,
 * command, presence). Small on purpose: a Redis/PostgreSQL registry or a clustered broker implements the
 * same interfaces later (docs/architecture.md).
 */
import type { DeviceRef } from './device-id';

/** A command a device type accepts; `params` is a JSON Schema for the command's params, when given. */
export interface CommandSpec {
  params?: Record<string, unknown>;
  /** Default timeout for this command (ms); the command node's default applies when absent. */
  timeoutMs?: number;
}

/** A device type: the telemetry JSON Schema and the commands its devices accept. */
export interface DeviceType {
  name: string;
  /** JSON Schema (2020-12) for one telemetry reading of this type. */
  schema?: Record<string, unknown>;
  commands?: Record<string, CommandSpec>;
  /** Alarm rules for devices of this type (iotb-alarm with this registry; nodes/lib/alarms/rules.ts). */
  alarms?: Record<string, unknown>[];
}

/** A device as the registry stores it, without its credentials. */
export interface DeviceRecord extends DeviceRef {
  enabled: boolean;
  createdAt: number;
}

/** One overload per event of `E`: `(event: 'a', listener: (...args: E['a']) => void) => R` & ... */
type ListenerOverloads<E, R> = UnionToIntersection<
  { [K in keyof E]: (event: K, listener: (...args: E[K] & unknown[]) => void) => R }[keyof E]
>;
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void
  ? I
  : never;

/**
 * The listening side of an emitter of the events `E`: what a user of a contract may call. Overloads (as aedes
 * types its events) rather than `EventEmitter<E>`, so that an emitter of more events (`EventEmitter<BrokerEvents>`)
 * still fits the contract.
 */
export interface EventSource<E> {
  on: ListenerOverloads<E, this>;
  once: ListenerOverloads<E, this>;
  off: ListenerOverloads<E, this>;
}

/** What a `DeviceDirectory` emits. */
export interface DeviceDirectoryEvents {
  /** Every token of the device is gone (revoked, or the device removed). */
  revoked: [deviceId: string];
  disabled: [deviceId: string];
  enabled: [deviceId: string];
  /** Device types were added, changed or removed. */
  types: [];
}

/** Read side of the device registry; events in `DeviceDirectoryEvents`. */
export interface DeviceDirectory extends EventSource<DeviceDirectoryEvents> {
  getDevice(id: string): DeviceRecord | undefined;
  getType(name: string): DeviceType | undefined;
  /** Every device type; a directory that cannot list them leaves it out. */
  listTypes?(): DeviceType[];
  /** False when every token of the device was revoked; a directory that cannot tell leaves it out. */
  hasCredentials?(id: string): boolean;
}

/** A message a device published, after the broker authenticated it and checked its ACL. */
export interface DeviceMessage {
  device: DeviceRef;
  /** Full MQTT topic, e.g. `devices/d1/telemetry`. */
  topic: string;
  /** The part after `devices/{id}/`: 'telemetry' | 'status' | 'commands/ack'. */
  kind: string;
  payload: Buffer;
  /** Its held acknowledgement (see ingest/ack-ledger.ts): set when the PUBACK waits until it is stored. */
  ackId?: number;
}

/** What a `DeviceLink` emits. */
export interface DeviceLinkEvents {
  online: [deviceId: string];
  offline: [deviceId: string];
  /** The device now listens on its commands topic; `isSubscribed` turned true. */
  subscribed: [deviceId: string];
  message: [message: DeviceMessage];
  /**
   * The device's connection acknowledged (PUBACK) a QoS 1 message we published to it; a link that cannot
   * tell never emits it.
   */
  delivered: [deviceId: string, topic: string, payload: Buffer];
}

/** What the broker offers the nodes that talk to devices; events in `DeviceLinkEvents`. */
export interface DeviceLink extends EventSource<DeviceLinkEvents> {
  isOnline(deviceId: string): boolean;
  /**
   * Online AND subscribed to its commands topic: a command published now reaches it. A broker reports a
   * connection before the device has subscribed; a command published in between would be lost.
   */
  isSubscribed(deviceId: string): boolean;
  /** Publishes to `devices/{deviceId}/{subtopic}`; resolves once the broker has accepted it for delivery. */
  publishToDevice(
    deviceId: string,
    subtopic: string,
    payload: Buffer | string,
    opts: { qos: 0 | 1 },
  ): Promise<void>;
}
