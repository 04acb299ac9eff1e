import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import {
  ExternalMqttIngest,
  MAX_SESSIONS,
  type ExternalMqttOptions,
  type ExternalMqttSnapshot,
} from '../lib/ingest/external-mqtt';
import { unresolvedEnvVar } from '../lib/config-check';
import type { RegistryHolder } from '../lib/registry/registry';
import { Throttle } from '../lib/throttle';

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

/** A positive integer setting, or its default when empty or not a positive number. */
const positive = (v: unknown, dflt: number, max = Number.MAX_SAFE_INTEGER): number => {
  const n = Math.floor(Number(v));
  return Number.isFinite(n) && n > 0 ? Math.min(n, max) : dflt;
};

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
    const registry = (RED.nodes.getNode(config.registry) as (Node & RegistryHolder) | null)?.registry;
    if (!registry) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-mqtt-in.status.noRegistry' });
      this.error(RED._('iotb-mqtt-in.error.noRegistry'));
      return;
    }
    // Node-RED leaves `${NAME}` as it is when the environment variable is not set.
    const unset = [config.url, config.clientId, config.sharedGroup]
      .map(unresolvedEnvVar)
      .find((name) => name !== undefined);
    if (unset) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-mqtt-in.status.badConfig' });
      this.error(RED._('iotb-mqtt-in.error.envUnset', { name: unset }));
      return;
    }
    const creds: MqttInCredentials = this.credentials;
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
    const show = (s: ExternalMqttSnapshot): void => {
      if (s.state === 'connected') lastError = undefined; // the next outage is reported again
      if (s.state === 'connected')
        this.status(
          s.paused
            ? {
                fill: 'yellow',
                shape: 'dot',
                text: RED._('iotb-mqtt-in.status.paused', { held: fmt(s.held) }),
              }
            : {
                fill: 'green',
                shape: 'dot',
                text: RED._(
                  s.retiring > 0
                    ? 'iotb-mqtt-in.status.retiring'
                    : s.timeouts
                      ? 'iotb-mqtt-in.status.timeouts'
                      : 'iotb-mqtt-in.status.connected',
                  { held: fmt(s.held), timeouts: fmt(s.timeouts), retiring: fmt(s.retiring) },
                ),
              },
        );
      else if (s.state === 'disconnected')
        this.status({
          fill: 'red',
          shape: 'ring',
          text: RED._('iotb-mqtt-in.status.disconnected', { error: s.lastError ?? '' }),
        });
      else this.status({ fill: 'grey', shape: 'ring', text: `iotb-mqtt-in.status.${s.state}` });
    };

    let ingest: ExternalMqttIngest;
    const status = new Throttle(() => show(ingest.snapshot()), 500);
    try {
      ingest = new ExternalMqttIngest(registry, opts, {
        reading: (msg) => this.send([asMessage(msg), null]),
        refused: (msg) => this.send([null, asMessage(msg)]),
        changed: () => status.call(),
        error: (err) => {
          // A broker that stays away would repeat the same error every reconnect: report each one once.
          if (err.message === lastError) return;
          lastError = err.message;
          this.error(err);
        },
      });
    } catch (err) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-mqtt-in.status.badConfig' });
      this.error(RED._('iotb-mqtt-in.error.badConfig', { error: (err as Error).message }));
      return;
    }
    status.call();
    const ticker = setInterval(() => status.call(), 2000);

    this.on('close', (_removed: boolean, done: () => void) => {
      clearInterval(ticker);
      status.cancel();
      ingest
        .close()
        .catch((err: unknown) => this.error(err))
        .finally(done);
    });
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
