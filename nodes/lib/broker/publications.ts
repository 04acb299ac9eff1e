/**
 * What devices publish, on its way to the flow: a publication of a kind a node stores (`takeAcks`) goes through
 * the ack gate (QoS 1: PUBACK once stored; at the bound: the connection waits), every other allowed publication
 * is handed over once aedes has taken it. Either way it leaves as the broker's 'message' event.
 */
import type { Client, PublishPacket } from 'aedes';
import type { DeviceMessage } from '../device-contracts';
import type { DeviceRef } from '../device-id';
import type { AckGate, GatedPublication } from './ack-gate';
import type { AuthorizePublishHook } from './aedes';
import { messagesTotal } from './metrics';
import type { Session } from './session';

type Release = Parameters<AuthorizePublishHook>[2];

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
  /** Publications already handed to the flow with a held ack: `published` skips them. */
  private readonly handedOver = new WeakSet<PublishPacket>();
  /** The message counter of each kind (prom-client hashes the labels on every `labels()` call). */
  private readonly counted = new Map<string, { inc(): void }>();

  constructor(
    readonly acks: AckGate,
    private readonly hooks: PublicationHooks,
  ) {}

  /**
   * The part of aedes' `authorizePublish` after the ACL: a stored kind waits at the gate (the callback is
   * aedes' go-ahead, the PUBACK for QoS 1); anything else goes on at once.
   */
  admit(client: Client, s: Session, packet: PublishPacket, cb: Release): void {
    if (!this.storedKinds.has(packet.topic.slice(s.prefixLength))) return cb(null);
    this.acks.admit(new Publication(this, client, s, packet, cb));
  }

  /** A device's publication past aedes (after its PUBACK): handed over unless the gate did it already. */
  published(s: Session, packet: PublishPacket): void {
    if (!this.handedOver.delete(packet)) this.deliver(s, packet.topic, packet.payload as Buffer, undefined);
  }

  /** Hands a held publication to the flow with its ack id. */
  handOver(s: Session, packet: PublishPacket, ackId: number): void {
    this.handedOver.add(packet);
    this.deliver(s, packet.topic, packet.payload as Buffer, ackId);
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
    let count = this.counted.get(kind);
    if (!count) this.counted.set(kind, (count = messagesTotal.labels(kind)));
    count.inc();
    if (kind === 'twin/reported') return this.hooks.reported(s, payload);
    const msg: DeviceMessage = { device: this.hooks.deviceRef(s), topic, kind, payload };
    if (ackId !== undefined) msg.ackId = ackId;
    this.hooks.message(msg);
  }
}

/** One publication at the ack gate (a class, not closures: one object per reading on the hot path). */
class Publication implements GatedPublication {
  readonly hold: boolean;

  constructor(
    private readonly owner: DevicePublications,
    readonly connection: Client,
    private readonly session: Session,
    private readonly packet: PublishPacket,
    private readonly cb: Release,
  ) {
    this.hold = packet.qos > 0; // QoS 2: the PUBREC waits the same way
  }

  deliver(ackId: number): void {
    this.owner.handOver(this.session, this.packet, ackId);
  }

  release(err?: Error | null): void {
    // A closed connection gets no answer (aedes would only report the write to it as an error).
    if (!this.connection.closed) this.cb(err);
  }
}
