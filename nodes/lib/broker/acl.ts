/**
 * Topic ACLs: a device publishes only to its own telemetry, status and commands/ack topics (its Will included),
 * with twins also to its own twin/reported, and subscribes only to its own commands topic (with twins also its
 * own twin/desired). A refusal is counted and becomes a security event.
 */
import type { Subscription } from 'aedes';
import { securityEvent, type SecurityEvent } from '../security-events';
import { refusedTotal } from './metrics';
import type { Session } from './session';

export class TopicAcl {
  constructor(
    private readonly maxTopicLength: number,
    private readonly security: (ev: SecurityEvent) => void,
  ) {}

  /** True when the session may publish to `topic`; a refusal is counted and reported. */
  mayPublish(s: Session | undefined, topic: string): s is Session {
    if (s && topic.length <= this.maxTopicLength && s.publishTopics.includes(topic)) return true;
    refusedTotal.labels('publish_acl').inc();
    this.security(securityEvent('acl_denied', 'mqtt', 'publish_topic', s?.device.id, s?.ip));
    return false;
  }

  /** Why a refused publication was refused (the topic cut to the length limit). */
  publishRefusal(topic: string): Error {
    return new Error(`publish to ${topic.slice(0, this.maxTopicLength)} not allowed`);
  }

  /** True when the session's Will (if any) goes to a topic it may publish to; a refusal is reported. */
  mayLeaveWill(s: Session, willTopic: string | undefined): boolean {
    if (willTopic === undefined || s.publishTopics.includes(willTopic)) return true;
    this.security(securityEvent('acl_denied', 'mqtt', 'will_topic', s.device.id, s.ip));
    return false;
  }

  /**
   * The subscription granted (QoS capped at 1), or null (SUBACK failure 0x80) for any topic not the device's
   * own; a grant on the commands topic records its QoS in the session.
   */
  grant(s: Session | undefined, sub: Subscription): Subscription | null {
    if (s && (sub.topic === s.commandsTopic || sub.topic === s.desiredTopic)) {
      if (sub.qos > 1) sub.qos = 1;
      if (sub.topic === s.commandsTopic) s.commandsQos = sub.qos;
      return sub;
    }
    refusedTotal.labels('subscribe_acl').inc();
    this.security(securityEvent('acl_denied', 'mqtt', 'subscribe_topic', s?.device.id, s?.ip));
    return null;
  }
}
