/**
 * The broker's publications to devices (commands, twin documents): published through aedes to the device's own
 * topics, and matched with the device's PUBACKs so that the broker can report a command delivered.
 */
import type { PublishPacket, PubrelPacket } from 'aedes';
import { isValidDeviceId } from '../device-id';
import { hasSubscription } from './aedes';
import type { PresenceBook } from './presence';
import type { ClientTable, Session } from './session';

const MAX_AWAITING_ACK = 1000;

export class DeviceLinkOut {
  constructor(
    private readonly topicPrefix: string,
    private readonly presence: PresenceBook,
    private readonly clients: ClientTable,
    /** Publishes through aedes; rejects when the broker is not running. */
    private readonly publish: (packet: PublishPacket) => Promise<void>,
  ) {}

  /** The live session of a connected device. */
  sessionOf(deviceId: string): Session | undefined {
    const client = this.presence.client(deviceId);
    return client && this.clients.session(client);
  }

  /** Online and subscribed to `topic` (default: its commands topic). */
  isSubscribed(deviceId: string, topic?: (s: Session) => string | undefined): boolean {
    const client = this.presence.client(deviceId);
    const s = client && this.clients.session(client);
    const t = s && (topic ? topic(s) : s.commandsTopic);
    return t !== undefined && client !== undefined && hasSubscription(client, t);
  }

  publishToDevice(
    deviceId: string,
    subtopic: string,
    payload: Buffer | string,
    opts: { qos: 0 | 1 },
  ): Promise<void> {
    if (!isValidDeviceId(deviceId))
      return Promise.reject(new Error(`device id "${String(deviceId)}" is not valid`));
    const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const packet: PublishPacket = {
      cmd: 'publish',
      topic: `${this.topicPrefix}/${deviceId}/${subtopic}`,
      payload: body,
      qos: opts.qos,
      retain: false,
      dup: false,
    };
    const s = this.sessionOf(deviceId);
    if (s?.clean && opts.qos === 1 && s.commandsQos === 1 && packet.topic === s.commandsTopic) {
      if (s.awaitingAck.length >= MAX_AWAITING_ACK) s.awaitingAck.shift();
      s.awaitingAck.push({ topic: packet.topic, payload: body });
    }
    return this.publish(packet);
  }

  /**
   * The publication of ours that the device's PUBACK acknowledges, if any. A persistent session's ack carries
   * the stored packet; a clean session's does not (aedes keeps no copy), so its acks are matched to our
   * publications in order (MQTT-4.6.0-2: PUBACKs in order). aedes 1.x emits 'ack' without a packet then,
   * although its typings say there always is one.
   */
  acknowledged(
    s: Session,
    packet: PublishPacket | PubrelPacket | undefined,
  ): { topic: string; payload: Buffer } | undefined {
    if (!packet) return s.awaitingAck.shift();
    if (packet.cmd === 'publish') return { topic: packet.topic, payload: packet.payload as Buffer };
    return undefined;
  }
}
