import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { BrokerHolder, BrokerState, ConnectionEvent } from '../lib/broker/broker';
import type { ConfigProblemHolder } from '../lib/config-check';
import type { DeviceMessage } from '../lib/device-contracts';
import { MicroBatcher, type MicroBatch } from '../lib/ingest/micro-batch';
import type { SecurityEvent } from '../lib/security-events';
import { Throttle } from '../lib/throttle';

interface DeviceInNodeDef extends NodeDef {
  broker: string;
  telemetry: boolean;
  status: boolean;
  ack: boolean;
  connectionEvents: boolean;
  securityEvents: boolean;
  payloadFormat: 'string' | 'buffer';
  /** 'stored' (default): a QoS 1 telemetry/status PUBACK waits until the flow stored it; 'received': at once. */
  ackWhen: 'stored' | 'received';
  batchSize: number | string;
  batchWaitMs: number | string;
}

/** A whole number from the dialog within [min, max], or the default. */
function setting(v: number | string | undefined, fallback: number, min: number, max: number): number {
  const n = Number(v);
  return v === '' || v === undefined || !Number.isInteger(n) || n < min || n > max ? fallback : n;
}

const KIND_OPTION: Record<string, 'telemetry' | 'status' | 'ack'> = {
  telemetry: 'telemetry',
  status: 'status',
  'commands/ack': 'ack',
};

/**
 * iotb-device-in: what devices publish through the embedded broker (output 1, with `msg.device` and the held
 * acknowledgement in `msg.ackId`; telemetry in micro-batches when `batchSize` > 1), and connect/disconnect and
 * security events (output 2).
 */
export = function register(RED: NodeAPI): void {
  function DeviceInNode(this: Node, config: DeviceInNodeDef): void {
    RED.nodes.createNode(this, config);
    const brokerNode = RED.nodes.getNode(config.broker) as (Node & BrokerHolder & ConfigProblemHolder) | null;
    const broker = brokerNode?.broker;
    if (!broker && brokerNode?.configProblem) {
      // The broker node logged it; here it is the status.
      const problem = brokerNode.configProblem;
      this.status({
        fill: 'red',
        shape: 'ring',
        text: RED._('iotb-device-in.status.configInvalid', { problem }),
      });
      return;
    }
    if (!broker) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-device-in.status.noBroker' });
      this.error(RED._('iotb-device-in.error.noBroker'));
      return;
    }
    const wanted = {
      telemetry: config.telemetry !== false,
      status: config.status !== false,
      ack: config.ack !== false,
    };
    const asBuffer = config.payloadFormat === 'buffer';
    const heldKinds = (['telemetry', 'status'] as const).filter((k) => wanted[k]);
    const giveBackAcks = config.ackWhen === 'received' ? undefined : broker.takeAcks(heldKinds);
    const batchSize = setting(config.batchSize, 1, 1, 10_000);
    const batcher =
      batchSize > 1
        ? new MicroBatcher(
            { maxCount: batchSize, maxWaitMs: setting(config.batchWaitMs, 5, 0, 10_000) },
            (batch: MicroBatch) => this.send([{ ...batch, kind: 'telemetry' }, null]),
          )
        : undefined;

    const status = new Throttle(() => {
      const state: BrokerState = broker.state;
      if (state === 'listening') {
        const { online, acks } = broker.stats();
        let text = RED._('iotb-device-in.status.online', { online });
        if (acks.held > 0 || acks.waiting > 0)
          text += RED._('iotb-device-in.status.held', { held: acks.held, waiting: acks.waiting });
        if (acks.timeouts > 0) text += RED._('iotb-device-in.status.timeouts', { timeouts: acks.timeouts });
        const fill = acks.timeouts > 0 || acks.waiting > 0 ? 'yellow' : 'green';
        this.status({ fill, shape: 'dot', text });
      } else if (state === 'failed')
        this.status({ fill: 'red', shape: 'ring', text: 'iotb-device-in.status.failed' });
      else this.status({ fill: 'grey', shape: 'ring', text: `iotb-device-in.status.${state}` });
    }, 500);

    const onMessage = (m: DeviceMessage): void => {
      const option = KIND_OPTION[m.kind];
      if (!option || !wanted[option]) return;
      const payload = asBuffer ? m.payload : m.payload.toString('utf8');
      if (batcher && option === 'telemetry') return batcher.push(m.device, payload, m.ackId ?? null);
      this.send([{ topic: m.topic, payload, device: m.device, kind: m.kind, ackId: m.ackId ?? null }, null]);
    };
    const onConnection = (ev: ConnectionEvent): void => {
      this.send([null, { topic: 'connection', payload: ev, device: broker.deviceRefOf(ev.deviceId) }]);
    };
    // No msg.device on security events: it marks an authenticated sender, and most of these are not.
    const onSecurity = (ev: SecurityEvent): void => this.send([null, { topic: 'security', payload: ev }]);
    const onChange = (): void => status.call();

    broker.on('message', onMessage);
    if (config.connectionEvents !== false) broker.on('connection', onConnection);
    if (config.securityEvents !== false) broker.on('security', onSecurity);
    broker.on('state', onChange);
    broker.on('online', onChange);
    broker.on('offline', onChange);
    status.call();
    // Held acks and timeouts change without broker events.
    const ticker = setInterval(() => status.call(), 2000);

    this.on('close', () => {
      clearInterval(ticker);
      // Nothing collected or held here is acknowledged: the devices send it again (see takeAcks).
      batcher?.discard();
      giveBackAcks?.();
      broker.off('message', onMessage);
      broker.off('connection', onConnection);
      broker.off('security', onSecurity);
      broker.off('state', onChange);
      broker.off('online', onChange);
      broker.off('offline', onChange);
      status.cancel();
    });
  }
  RED.nodes.registerType('iotb-device-in', DeviceInNode);
};
