import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { DeviceBroker, type BrokerHolder, type BrokerLimits, type ListenOptions } from '../lib/broker/broker';
import type { Registry, RegistryHolder } from '../lib/registry/registry';
import type { SecurityEvent } from '../lib/security-events';
import { FileTwinStore } from '../lib/twin/file-store';
import { TwinService } from '../lib/twin/twin-service';

interface BrokerNodeDef extends NodeDef {
  registry: string;
  host: string;
  port: number | string;
  topicPrefix: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  wsEnabled: boolean;
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

type BrokerConfigNode = Node & BrokerHolder;

/** A number from the dialog, or the default when empty or not a number >= 0. */
function num(v: number | string | undefined, fallback: number): number {
  const n = Number(v);
  return v === '' || v === undefined || !Number.isFinite(n) || n < 0 ? fallback : n;
}

/**
 * iotb-broker: the embedded MQTT broker. Starts listening when deployed, closes (releasing the port and
 * disconnecting devices) on redeploy or stop.
 */
export = function register(RED: NodeAPI): void {
  function BrokerNode(this: BrokerConfigNode, config: BrokerNodeDef): void {
    RED.nodes.createNode(this, config);
    const registry = (RED.nodes.getNode(config.registry) as (Node & RegistryHolder) | null)?.registry;
    if (!registry) {
      this.error(RED._('iotb-broker.error.noRegistry'));
      return;
    }
    const limits: Partial<BrokerLimits> = {
      maxPacketBytes: num(config.maxPacketKb, 256) * 1024,
      maxConnections: num(config.maxConnections, 10_000),
      connectRatePerIp: num(config.connectRatePerIp, 20),
      connectBurstPerIp: num(config.connectRatePerIp, 20) * 2,
      lockoutThreshold: num(config.lockoutThreshold, 5),
      keepaliveLimitS: num(config.keepaliveLimitS, 1200),
    };
    const port = num(config.port, 1883);
    const listen: ListenOptions = { host: config.host || '0.0.0.0', port };
    try {
      if (config.certFile || config.keyFile) {
        listen.tls = { cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) };
        if (config.caFile) listen.tls.ca = readFileSync(config.caFile);
      }
    } catch (err) {
      this.error(RED._('iotb-broker.error.tls', { message: (err as Error).message }));
      return;
    }
    if (config.wsEnabled)
      listen.ws = { host: listen.host, port: num(config.wsPort, 8083), path: config.wsPath || '/mqtt' };

    const acks = {
      maxHeld: Math.max(1, num(config.maxUnacked, 10_000)),
      timeoutMs: Math.max(0.1, num(config.ackTimeoutS, 30)) * 1000,
    };
    const twins = openTwins(this, config, registry);
    this.twins = twins;
    const topicPrefix = config.topicPrefix || 'devices';
    const broker = new DeviceBroker({ registry, topicPrefix, limits, acks, twins });
    this.broker = broker;
    broker.on('error', (err: Error) =>
      this.error(RED._('iotb-broker.error.listener', { message: err.message })),
    );
    broker.on('security', (ev: SecurityEvent) => {
      if (ev.event === 'lockout')
        this.warn(RED._('iotb-broker.warn.lockout', { device: ev.deviceId ?? '', ip: ev.ip ?? '' }));
    });
    const where = `${listen.tls ? 'mqtts' : 'mqtt'}://${listen.host}:${port}${listen.ws ? ` + ws://${listen.ws.host}:${listen.ws.port}${listen.ws.path}` : ''}`;
    broker.start(listen).then(
      () => this.log(RED._('iotb-broker.log.listening', { where })),
      (err: Error) => this.error(RED._('iotb-broker.error.start', { where, message: err.message })),
    );
    this.on('close', (done: () => void) => {
      const closeTwins = (): void => {
        try {
          twins?.close();
        } catch (err) {
          this.error(RED._('iotb-broker.error.twinClose', { message: (err as Error).message }));
        }
        done();
      };
      broker.close().then(closeTwins, (err: Error) => {
        this.error(err);
        closeTwins();
      });
    });
  }

  /** The twin file (in the user dir unless absolute); undefined, with the reason logged, when it cannot be opened. */
  function openTwins(
    node: BrokerConfigNode,
    config: BrokerNodeDef,
    registry: Registry,
  ): TwinService | undefined {
    const userDir = (RED.settings as { userDir?: string }).userDir ?? process.cwd();
    const name = config.twinFile || 'iotb-twins.json';
    const file = isAbsolute(name) ? name : join(userDir, name);
    try {
      return new TwinService({
        store: new FileTwinStore(file),
        directory: registry,
        limits: { maxDocBytes: num(config.twinMaxKb, 16) * 1024 },
      });
    } catch (err) {
      node.error(RED._('iotb-broker.error.twins', { file, message: (err as Error).message }));
      return undefined;
    }
  }
  RED.nodes.registerType('iotb-broker', BrokerNode);
};
