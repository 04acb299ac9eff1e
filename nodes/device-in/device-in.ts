import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { BrokerState, ConnectionEvent } from '../lib/broker/broker';
import type { DeviceMessage } from '../lib/device-contracts';
import { MicroBatcher, type MicroBatch } from '../lib/ingest/micro-batch';
import type { SecurityEvent } from '../lib/security-events';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import type { StatusView } from '../glue/status';

interface DeviceInNodeDef extends NodeDef {
  broker: string;
  // A flow written by hand may leave these out: each is on unless set to false.
  telemetry?: boolean;
  status?: boolean;
  ack?: boolean;
  connectionEvents?: boolean;
  securityEvents?: boolean;
  payloadFormat: 'string' | 'buffer';
  /** 'stored' (default): a QoS 1 telemetry/status PUBACK waits until the flow stored it; 'received': at once. */
  ackWhen: 'stored' | 'received';
  batchSize: number | string;
  batchWaitMs: number | string;
}

const KIND_OPTION: Partial<Record<string, 'telemetry' | 'status' | 'ack'>> = {
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
    const glue = new NodeGlue(RED, this);
    const broker = glue.requireConfig('broker', config.broker);
    if (!broker) return;
    const wanted = {
      telemetry: config.telemetry !== false,
      status: config.status !== false,
      ack: config.ack !== false,
    };
    const asBuffer = config.payloadFormat === 'buffer';
    const heldKinds = (['telemetry', 'status'] as const).filter((k) => wanted[k]);
    // Nothing collected or held here is acknowledged on close: the devices send it again (see takeAcks).
    if (config.ackWhen !== 'received') glue.onClose(broker.takeAcks(heldKinds));
    const batchSize = numberSetting(config.batchSize, { fallback: 1, min: 1, max: 10_000, integer: true });
    const batcher =
      batchSize > 1
        ? new MicroBatcher(
            {
              maxCount: batchSize,
              maxWaitMs: numberSetting(config.batchWaitMs, {
                fallback: 5,
                min: 0,
                max: 10_000,
                integer: true,
              }),
            },
            (batch: MicroBatch) => this.send([{ ...batch, kind: 'telemetry' }, null]),
          )
        : undefined;
    if (batcher) glue.onClose(() => batcher.discard());

    const status = glue.status((): StatusView => {
      const state: BrokerState = broker.state;
      if (state !== 'listening')
        return { fill: state === 'failed' ? 'red' : 'grey', shape: 'ring', key: `status.${state}` };
      const { online, acks } = broker.stats();
      const more = [];
      if (acks.held > 0 || acks.waiting > 0)
        more.push({ key: 'status.held', vars: { held: acks.held, waiting: acks.waiting } });
      if (acks.timeouts > 0) more.push({ key: 'status.timeouts', vars: { timeouts: acks.timeouts } });
      const fill = acks.timeouts > 0 || acks.waiting > 0 ? 'yellow' : 'green';
      return { fill, shape: 'dot', key: 'status.online', vars: { online }, more };
    });

    const on = glue.listen(broker);
    on('message', (m: DeviceMessage) => {
      const option = KIND_OPTION[m.kind];
      if (!option || !wanted[option]) return;
      const payload = asBuffer ? m.payload : m.payload.toString('utf8');
      if (batcher && option === 'telemetry') return batcher.push(m.device, payload, m.ackId ?? null);
      this.send([{ topic: m.topic, payload, device: m.device, kind: m.kind, ackId: m.ackId ?? null }, null]);
    });
    if (config.connectionEvents !== false)
      on('connection', (ev: ConnectionEvent) => {
        this.send([null, { topic: 'connection', payload: ev, device: broker.deviceRefOf(ev.deviceId) }]);
      });
    // No msg.device on security events: it marks an authenticated sender, and most of these are not.
    if (config.securityEvents !== false)
      on('security', (ev: SecurityEvent) => this.send([null, { topic: 'security', payload: ev }]));
    for (const event of ['state', 'online', 'offline'] as const) on(event, () => status.update());
    status.update();
    // Held acks and timeouts change without broker events.
    glue.every(2000, () => status.update());
  }
  RED.nodes.registerType('iotb-device-in', DeviceInNode);
};
