/** What the broker knows about each MQTT client: its address, its Will topic and, once authenticated, its session. */
import type { Client } from 'aedes';
import type { DeviceRecord } from '../device-contracts';

/** An authenticated device's connection: who it is and the topics that are its own. */
export interface Session {
  device: DeviceRecord;
  /** Hash of the token this session authenticated with: it ends when that token expires. */
  credential: string;
  ip: string;
  publishTopics: readonly string[];
  commandsTopic: string;
  /** Undefined without twins. */
  desiredTopic: string | undefined;
  prefixLength: number;
  /** QoS granted on the commands topic (0 also when not subscribed). */
  commandsQos: number;
  clean: boolean;
  /** Our QoS 1 publications to a clean session, in order, until its PUBACKs arrive (bounded). */
  awaitingAck: { topic: string; payload: Buffer }[];
}

/** The session of a device `device` under `topicPrefix` (twins: whether it gets the twin topics). */
export function openSession(
  topicPrefix: string,
  twins: boolean,
  device: DeviceRecord,
  credential: string,
  ip: string,
  clean: boolean,
): Session {
  const base = `${topicPrefix}/${device.id}/`;
  const publishTopics = [`${base}telemetry`, `${base}status`, `${base}commands/ack`];
  if (twins) publishTopics.push(`${base}twin/reported`);
  return {
    device,
    credential,
    ip,
    publishTopics,
    commandsTopic: `${base}commands`,
    desiredTopic: twins ? `${base}twin/desired` : undefined,
    prefixLength: base.length,
    commandsQos: 0,
    clean,
    awaitingAck: [],
  };
}

/** Per aedes client (weakly held: a closed client takes its entries with it). */
export class ClientTable {
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly ips = new WeakMap<Client, string>();
  private readonly willTopics = new WeakMap<Client, string>();

  session(client: Client): Session | undefined {
    return this.sessions.get(client);
  }

  setSession(client: Client, session: Session): void {
    this.sessions.set(client, session);
  }

  ip(client: Client): string | undefined {
    return this.ips.get(client);
  }

  setIp(client: Client, ip: string): void {
    this.ips.set(client, ip);
  }

  willTopic(client: Client): string | undefined {
    return this.willTopics.get(client);
  }

  setWillTopic(client: Client, topic: string): void {
    this.willTopics.set(client, topic);
  }
}
