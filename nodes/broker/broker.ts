import { readFileSync } from 'node:fs';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import {
  DeviceBroker,
  plaintextBeyondLoopback,
  type BrokerHolder,
  type BrokerLimits,
  type ListenOptions,
} from '../lib/broker/broker';
import type { Registry } from '../lib/registry/registry';
import type { SecurityEvent } from '../lib/security-events';
import {
  checkSetting,
  firstProblem,
  optionalHost,
  optionalPort,
  type ConfigProblemHolder,
} from '../lib/config-check';
import { FileTwinStore } from '../lib/twin/file-store';
import { TwinService } from '../lib/twin/twin-service';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface BrokerNodeDef extends NodeDef {
  registry: string;
  host: string;
  port: number | string;
  topicPrefix: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  wsEnabled: boolean;
  allowPlaintext: boolean;
  wsPort: number | string;
  wsPath: string;
  maxPacketKb: number | string;
  maxConnections: number | string;
  connectRatePerIp: number | string;
  lockoutThreshold: number | string;
  keepaliveLimitS: number | string;
  maxUnacked: number | string;
  ackTimeoutS: number | string;
  twinFile?: string;
  twinMaxKb?: number | string;
}

type BrokerConfigNode = Node & BrokerHolder & ConfigProblemHolder;

/** Broker settings are numbers >= 0 (0 switches a limit off where the broker allows it). */
const num = (value: unknown, fallback: number): number => numberSetting(value, { fallback, min: 0 });

/**
 * iotb-broker: the embedded MQTT broker. Starts listening when deployed, closes (releasing the port and
 * disconnecting devices) on redeploy or stop.
 */
export = function register(RED: NodeAPI): void {
  function BrokerNode(this: BrokerConfigNode, config: BrokerNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const registry = glue.requireConfig('registry', config.registry);
    if (!registry) {
      this.configProblem = glue.t('config.noRegistry');
      return;
    }
    // Host and port usually come from ${IOTB_MQTT_HOST}/${IOTB_MQTT_PORT}: a variable that is not set would
    // otherwise surface as "getaddrinfo ENOTFOUND ${IOTB_MQTT_HOST}". Said once here; the nodes that use
    // the broker show it in their status.
    const problem = firstProblem(
      checkSetting('Host', config.host, optionalHost),
      checkSetting('Port', config.port, optionalPort),
      // An unset ${IOTB_MQTT_TLS_CERT} would otherwise be read as a file name; set empty, it means no TLS.
      checkSetting('Certificate file', config.certFile, () => undefined),
      checkSetting('Key file', config.keyFile, () => undefined),
      config.wsEnabled ? checkSetting('WS port', config.wsPort, optionalPort) : undefined,
    );
    if (problem) {
      this.configProblem = problem;
      this.error(glue.t('error.invalid', { problem }));
      return;
    }
    const limits: Partial<BrokerLimits> = {
      maxPacketBytes: num(config.maxPacketKb, 256) * 1024,
      maxConnections: num(config.maxConnections, 10_000),
      connectRatePerIp: num(config.connectRatePerIp, 200),
      connectBurstPerIp: num(config.connectRatePerIp, 200) * 2,
      lockoutThreshold: num(config.lockoutThreshold, 5),
      keepaliveLimitS: num(config.keepaliveLimitS, 1200),
    };
    const port = num(config.port, 1883);
    const listen: ListenOptions = {
      host: config.host || '127.0.0.1',
      port,
      allowPlaintext: config.allowPlaintext,
    };
    try {
      if (config.certFile || config.keyFile) {
        listen.tls = { cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) };
        if (config.caFile) listen.tls.ca = readFileSync(config.caFile);
      }
    } catch (err) {
      this.error(glue.t('error.tls', { message: (err as Error).message }));
      return;
    }
    if (config.wsEnabled)
      listen.ws = { host: listen.host, port: num(config.wsPort, 8083), path: config.wsPath || '/mqtt' };

    const exposed = plaintextBeyondLoopback(listen);
    if (exposed.length > 0 && config.allowPlaintext)
      this.warn(glue.t('warn.plaintext', { where: exposed.join(', ') }));

    const acks = {
      maxHeld: Math.max(1, num(config.maxUnacked, 10_000)),
      timeoutMs: Math.max(0.1, num(config.ackTimeoutS, 30)) * 1000,
    };
    const twins = openTwins(this, glue, config, registry);
    this.twins = twins;
    const topicPrefix = config.topicPrefix || 'devices';
    const broker = new DeviceBroker({ registry, topicPrefix, limits, acks, twins });
    this.broker = broker;
    const on = glue.listen(broker);
    on('error', (err: Error) => this.error(glue.t('error.listener', { message: err.message })));
    on('security', (ev: SecurityEvent) => {
      if (ev.event === 'lockout')
        this.warn(glue.t('warn.lockout', { device: ev.deviceId ?? '', ip: ev.ip ?? '' }));
    });
    const where = `${listen.tls ? 'mqtts' : 'mqtt'}://${listen.host}:${port}${listen.ws ? ` + ws://${listen.ws.host}:${listen.ws.port}${listen.ws.path}` : ''}`;
    broker.start(listen).then(
      () => this.log(glue.t('log.listening', { where })),
      (err: unknown) => this.error(glue.t('error.start', { where, message: (err as Error).message })),
    );
    // Closed after the broker, which stops the devices' twin traffic first.
    if (twins) glue.onClose(() => twins.close());
    glue.onClose(() => broker.close());
  }

  /** The twin file (in the user dir unless absolute); undefined, with the reason logged, when it cannot be opened. */
  function openTwins(
    node: BrokerConfigNode,
    glue: NodeGlue,
    config: BrokerNodeDef,
    registry: Registry,
  ): TwinService | undefined {
    const file = glue.userFile(config.twinFile || 'iotb-twins.json');
    try {
      return new TwinService({
        store: new FileTwinStore(file),
        directory: registry,
        limits: { maxDocBytes: num(config.twinMaxKb, 16) * 1024 },
      });
    } catch (err) {
      node.error(glue.t('error.twins', { file, message: (err as Error).message }));
      return undefined;
    }
  }
  RED.nodes.registerType('iotb-broker', BrokerNode);
};
