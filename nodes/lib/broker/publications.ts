/**
 * What devices publish, on its way to the flow: a publication of a kind a node stores (`takeAcks`) goes through
 * the ack gate (QoS 1: PUBACK once stored; at the bound: the connection waits), every other allowed publication
 * is handed over once aedes has taken it. Either way it leaves as the broker's 'message' event.
 */
import type { Client, PublishPacket } from 'aedes';
import type { DeviceMessage } from '../device-contracts';
import type { DeviceRef } from '../device-id';
import type { AckGate } from './ack-gate';
import type { AuthorizePublishHook } from './aedes';
import { messagesTotal } from './metrics';
import type { Session } from './session';

export interface PublicationHooks {
  /** The registered device for `msg.device` (its current record), or the session's. */
  deviceRef(s: Session): DeviceRef;
  /** The device was heard of now. */
  seen(deviceId: string): void;
  /** A twin/reported publication (merged by the twin side). */
  reported(s: Session, payload: Buffer): void;
  message(msg: DeviceMessage): void;
}

export class DevicePublications {
  /** Kinds whose QoS 1 PUBACK waits until the flow stored them, with how many nodes take them. */
  private readonly storedKinds = new Map<string, number>();
  /** Payloads of publications already handed to the flow with a held ack: aedes' 'publish' skips them. */
  private readonly handedOver = new WeakSet<Buffer>();

  constructor(
    readonly acks: AckGate,
    private readonly hooks: PublicationHooks,
  ) {}

  /**
   * The part of aedes' `authorizePublish` after the ACL: a stored kind waits at the gate (the callback is
   * aedes' go-ahead, the PUBACK for QoS 1); anything else goes on at once.
   */
  admit(client: Client, s: Session, packet: PublishPacket, cb: Parameters<AuthorizePublishHook>[2]): void {
    if (!this.storedKinds.has(packet.topic.slice(s.prefixLength))) return cb(null);
    const payload = packet.payload as Buffer;
    this.acks.admit({
      connection: client,
      hold: packet.qos > 0, // QoS 2: the PUBREC waits the same way
      deliver: (ackId) => {
        this.handedOver.add(payload);
        this.deliver(s, packet.topic, payload, ackId);
      },
      // A closed connection gets no answer (aedes would only report the write to it as an error).
      release: (err) => {
        if (!client.closed) cb(err);
      },
    });
  }

  /** aedes' 'publish' event for a device's publication: handed over unless the gate did it already. */
  published(s: Session, packet: PublishPacket): void {
    const payload = packet.payload as Buffer;
    if (!this.handedOver.delete(payload)) this.deliver(s, packet.topic, payload, undefined);
  }

  /** See DeviceBroker.takeAcks. */
  takeAcks(kinds: readonly string[]): () => void {
    for (const k of kinds) this.storedKinds.set(k, (this.storedKinds.get(k) ?? 0) + 1);
    let taken = true;
    return () => {
      if (!taken) return;
      taken = false;
      for (const k of kinds) {
        const n = (this.storedKinds.get(k) ?? 1) - 1;
        if (n > 0) this.storedKinds.set(k, n);
        else this.storedKinds.delete(k);
      }
      this.acks.releaseAll();
    };
  }

  /** A device's publication to the flow; `ackId` when its PUBACK waits for storage. */
  private deliver(s: Session, topic: string, payload: Buffer, ackId: number | undefined): void {
    this.hooks.seen(s.device.id);
    const kind = topic.slice(s.prefixLength);
    messagesTotal.labels(kind).inc();
    if (kind === 'twin/reported') return this.hooks.reported(s, payload);
    const msg: DeviceMessage = { device: this.hooks.deviceRef(s), topic, kind, payload };
    if (ackId !== undefined) msg.ackId = ackId;
    this.hooks.message(msg);
  }
}
