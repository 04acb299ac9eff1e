import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { BrokerHolder, BrokerState, ConnectionEvent } from '../lib/broker/broker';
import type { DeviceMessage } from '../lib/device-contracts';
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
}

const KIND_OPTION: Record<string, 'telemetry' | 'status' | 'ack'> = {
  telemetry: 'telemetry',
  status: 'status',
  'commands/ack': 'ack',
};

/**
 * iotb-device-in: what devices publish through the embedded broker (output 1, with `msg.device`), and
 * connect/disconnect and security events (output 2).
 */
export = function register(RED: NodeAPI): void {
  function DeviceInNode(this: Node, config: DeviceInNodeDef): void {
    RED.nodes.createNode(this, config);
    const broker = (RED.nodes.getNode(config.broker) as (Node & BrokerHolder) | null)?.broker;
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

    const status = new Throttle(() => {
      const state: BrokerState = broker.state;
      if (state === 'listening') {
        const online = broker.stats().online;
        this.status({ fill: 'green', shape: 'dot', text: RED._('iotb-device-in.status.online', { online }) });
      } else if (state === 'failed')
        this.status({ fill: 'red', shape: 'ring', text: 'iotb-device-in.status.failed' });
      else this.status({ fill: 'grey', shape: 'ring', text: `iotb-device-in.status.${state}` });
    }, 500);

    const onMessage = (m: DeviceMessage): void => {
      const option = KIND_OPTION[m.kind];
      if (!option || !wanted[option]) return;
      this.send([
        {
          topic: m.topic,
          payload: asBuffer ? m.payload : m.payload.toString('utf8'),
          device: m.device,
          kind: m.kind,
        },
        null,
      ]);
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

    this.on('close', () => {
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
