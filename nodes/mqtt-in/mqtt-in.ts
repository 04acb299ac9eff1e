import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import {
  ExternalMqttIngest,
  MAX_SESSIONS,
  type ExternalMqttOptions,
  type ExternalMqttSnapshot,
} from '../lib/ingest/external-mqtt';
import { unresolvedEnvVar } from '../lib/config-check';
import { credentialsOf, NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import type { StatusView } from '../glue/status';

interface MqttInNodeDef extends NodeDef {
  registry: string;
  // A flow written by hand or an older export may leave any setting out.
  url?: string;
  protocolVersion: number | string;
  clientId?: string;
  topicPrefix: string;
  sharedGroup?: string;
  sessions?: number | string;
  sessionExpiryS: number | string;
  receiveMaximum: number | string;
  maxHeld: number | string;
  ackTimeoutS: number | string;
  batchSize: number | string;
  batchWaitMs: number | string;
  batchWaitMaxMs?: number | string;
  payloadFormat: 'string' | 'buffer';
}

interface MqttInCredentials {
  username?: string;
  password?: string;
  ca?: string;
}

/** A whole number >= 1 up to `max`, or its default. */
const positive = (value: unknown, fallback: number, max?: number): number =>
  numberSetting(value, { fallback, min: 1, max, integer: true });

/** Connections to the broker when the setting is left out. */
const SESSIONS_DEFAULT = 1;

/** The ingest's messages are plain objects built for Node-RED; only their static type lacks an index signature. */
const asMessage = (msg: object): NodeMessage => msg as NodeMessage;

/**
 * iotb-mqtt-in: device readings from an external MQTT broker; each PUBACK is held until the reading (or
 * its rejection event) is in the durable spool. Output 1 readings, output 2 refused publications.
 */
export = function register(RED: NodeAPI): void {
  function MqttInNode(this: Node<MqttInCredentials>, config: MqttInNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const registry = glue.requireConfig('registry', config.registry);
    if (!registry) return;
    // Node-RED leaves `${NAME}` as it is when the environment variable is not set.
    const unset = [config.url, config.clientId, config.sharedGroup]
      .map(unresolvedEnvVar)
      .find((name) => name !== undefined);
    if (unset) {
      glue.cannotWork(glue.t('error.envUnset', { name: unset }), 'CONFIG_INVALID');
      return;
    }
    const creds = credentialsOf(this);
    const batchWaitMs = positive(config.batchWaitMs, 20);
    const opts: ExternalMqttOptions = {
      url: config.url || 'mqtt://127.0.0.1:1883',
      clientId: config.clientId || `iotb-${this.id}`,
      protocolVersion: Number(config.protocolVersion) === 4 ? 4 : 5,
      topicPrefix: config.topicPrefix || 'devices',
      sharedGroup: config.sharedGroup ?? '',
      sessions: positive(config.sessions, SESSIONS_DEFAULT, MAX_SESSIONS),
      sessionExpiryS: positive(config.sessionExpiryS, 86_400, 0xffffffff),
      receiveMaximum: positive(config.receiveMaximum, 1000, 65_535),
      maxHeld: positive(config.maxHeld, 1000),
      ackTimeoutMs: positive(config.ackTimeoutS, 30) * 1000,
      batchSize: positive(config.batchSize, 1),
      batchWaitMs,
      batchWaitMaxMs: Math.max(batchWaitMs, positive(config.batchWaitMaxMs, batchWaitMs)),
      payloadFormat: config.payloadFormat === 'buffer' ? 'buffer' : 'string',
      username: creds.username,
      password: creds.password,
      ca: creds.ca,
    };

    const fmt = (n: number): string => n.toLocaleString('en-US');
    let lastError: string | undefined;
    const show = (s: ExternalMqttSnapshot): StatusView => {
      if (s.state === 'disconnected')
        return { fill: 'red', shape: 'ring', key: 'status.disconnected', vars: { error: s.lastError ?? '' } };
      if (s.state !== 'connected') return { fill: 'grey', shape: 'ring', key: `status.${s.state}` };
      lastError = undefined; // the next outage is reported again
      if (s.paused)
        return { fill: 'yellow', shape: 'dot', key: 'status.paused', vars: { held: fmt(s.held) } };
      return {
        fill: 'green',
        shape: 'dot',
        key: s.retiring > 0 ? 'status.retiring' : s.timeouts ? 'status.timeouts' : 'status.connected',
        vars: { held: fmt(s.held), timeouts: fmt(s.timeouts), retiring: fmt(s.retiring) },
      };
    };

    let ingest: ExternalMqttIngest;
    const status = glue.status(() => show(ingest.snapshot()));
    try {
      ingest = new ExternalMqttIngest(registry, opts, {
        reading: (msg) => this.send([asMessage(msg), null]),
        refused: (msg) => this.send([null, asMessage(msg)]),
        changed: () => status.update(),
        error: (err) => {
          // A broker that stays away would repeat the same error every reconnect: report each one once.
          if (err.message === lastError) return;
          lastError = err.message;
          this.error(err);
        },
      });
    } catch (err) {
      glue.cannotWork(glue.t('error.badConfig', { error: (err as Error).message }), 'CONFIG_INVALID');
      return;
    }
    glue.onClose(() => ingest.close());
    status.update();
    glue.every(2000, () => status.update());
  }
  RED.nodes.registerType<Node<MqttInCredentials>, MqttInNodeDef, unknown, MqttInCredentials>(
    'iotb-mqtt-in',
    MqttInNode,
    {
      credentials: {
        username: { type: 'text' },
        password: { type: 'password' },
        ca: { type: 'text' },
      },
    },
  );
};
