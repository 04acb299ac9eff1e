/**
 * The three ingest compositions bench/ingest.ts compares, as Node-RED flows:
 * - `stock`: what a user builds from core nodes and node-red-contrib-influxdb behind an external broker;
 * - `external`: the shipped pipeline behind an external broker (Mosquitto);
 * - `embedded`: the shipped pipeline on the embedded broker, devices logging in with their own tokens.
 * Every flow reads devices/<id>/telemetry readings `{ts, temperature, humidity}` and writes measurement
 * `telemetry` with tag `device` into `database`.
 */
import { shippedFlow, type FlowNode } from '../../test/support/backend';

export type IngestCase = 'stock' | 'external' | 'embedded';

export interface FlowTarget {
  influxUrl: string;
  database: string;
  /** The external broker (stock, external) or the port the embedded broker listens on (embedded). */
  mqttHost: string;
  mqttPort: number;
  /** The registry node's id: its credentials are deployed by the caller. */
  registryId: string;
  /** The MQTT client id of the flow's broker connection. */
  clientId: string;
  /** The `external` case's broker-facing nodes (default `mqtt-in`). */
  externalIngress?: ExternalIngress;
  /** Settings of `iotb-mqtt-in` that replace the shipped flow's (IOTB_BENCH_MQTT_IN), for trying other values. */
  mqttInSettings?: Record<string, unknown>;
}

const Z = 'be0c000000000001';
const TOPIC = 'devices/+/telemetry';
const tab: FlowNode = { id: Z, type: 'tab', label: 'ingest benchmark' };

/** A shipped node's settings as the shipped flow (flows/backend.json unless named) configures it. */
function shipped(type: string, file = 'backend.json'): FlowNode {
  const node = shippedFlow(file).find((n) => n.type === type);
  if (!node) throw new Error(`flows/${file} has no ${type} node`);
  const { x: _x, y: _y, z: _z, wires: _w, ...config } = node;
  return config;
}

function registryNode(t: FlowTarget): FlowNode {
  return { ...shipped('iotb-registry'), id: t.registryId, file: 'iotb-registry.json' };
}

function externalBroker(t: FlowTarget): FlowNode {
  return {
    id: 'be0c000000000002',
    type: 'mqtt-broker',
    broker: t.mqttHost,
    port: String(t.mqttPort),
    clientid: t.clientId,
    protocolVersion: '4',
    keepalive: '60',
    cleansession: true,
    autoConnect: true,
  };
}

function mqttIn(datatype: string, next: string): FlowNode {
  return {
    id: 'be0c000000000003',
    type: 'mqtt in',
    z: Z,
    topic: TOPIC,
    qos: '1',
    datatype,
    broker: 'be0c000000000002',
    nl: false,
    rap: false,
    inputs: 0,
    wires: [[next]],
  };
}

/** validate -> quality -> influx write, as shipped; the first node's id is `be0c000000000010`. */
function shippedPipeline(t: FlowTarget): FlowNode[] {
  return [
    {
      ...shipped('iotb-validate'),
      id: 'be0c000000000010',
      z: Z,
      registry: t.registryId,
      wires: [['be0c000000000011'], []],
    },
    {
      ...shipped('iotb-quality'),
      id: 'be0c000000000011',
      z: Z,
      registry: t.registryId,
      wires: [['be0c000000000012'], []],
    },
    {
      ...shipped('iotb-influx-write'),
      id: 'be0c000000000012',
      z: Z,
      name: 'telemetry',
      influx: 'be0c000000000013',
      confirm: false,
      wires: [[], [], []],
    },
    { ...shipped('iotb-influx'), id: 'be0c000000000013', url: t.influxUrl, database: t.database },
  ];
}

function stockFlow(t: FlowTarget): FlowNode[] {
  return [
    tab,
    externalBroker(t),
    mqttIn('utf8', 'be0c000000000020'),
    {
      id: 'be0c000000000020',
      type: 'json',
      z: Z,
      property: 'payload',
      action: 'obj',
      wires: [['be0c000000000021']],
    },
    {
      id: 'be0c000000000021',
      type: 'function',
      z: Z,
      name: 'validate',
      outputs: 1,
      func: [
        'const r = msg.payload;',
        'const m = /^devices\\/([^/]+)\\/telemetry$/.exec(msg.topic);',
        "if (!m || typeof r !== 'object' || r === null || !Number.isInteger(r.ts)) { node.warn('invalid reading'); return null; }",
        "if (typeof r.temperature !== 'number' || r.temperature < -50 || r.temperature > 150) { node.warn('bad temperature'); return null; }",
        "if (r.humidity !== undefined && (typeof r.humidity !== 'number' || r.humidity < 0 || r.humidity > 100)) { node.warn('bad humidity'); return null; }",
        'msg.device = m[1];',
        'return msg;',
      ].join('\n'),
      wires: [['be0c000000000022']],
    },
    {
      id: 'be0c000000000022',
      type: 'function',
      z: Z,
      name: 'map to point',
      outputs: 1,
      func: [
        'const r = msg.payload;',
        "msg.payload = { measurement: 'telemetry', tags: { device: msg.device }, fields: { temperature: r.temperature, humidity: r.humidity }, timestamp: new Date(r.ts) };",
        'return msg;',
      ].join('\n'),
      wires: [['be0c000000000023']],
    },
    {
      id: 'be0c000000000023',
      type: 'join',
      z: Z,
      mode: 'custom',
      build: 'array',
      property: 'payload',
      propertyType: 'msg',
      key: 'topic',
      joiner: '\\n',
      joinerType: 'str',
      accumulate: false,
      timeout: '1',
      count: '1000',
      reduceRight: false,
      useparts: false,
      wires: [['be0c000000000024']],
    },
    {
      id: 'be0c000000000024',
      type: 'influxdb batch',
      z: Z,
      influxdb: 'be0c000000000025',
      precision: 'ms',
      retentionPolicy: '',
      name: '',
      wires: [],
    },
    {
      id: 'be0c000000000025',
      type: 'influxdb',
      hostname: new URL(t.influxUrl).hostname,
      port: new URL(t.influxUrl).port,
      protocol: 'http',
      database: t.database,
      name: '',
      usetls: false,
      influxdbVersion: '1.x',
    },
  ];
}

/**
 * How the shipped pipeline takes readings from an external broker:
 * - `mqtt-in` (default): the package's external-broker node `iotb-mqtt-in` as flows/external-broker.json
 *   configures it (persistent session, PUBACK once a reading is durable, micro-batches);
 * - `auth`: core `mqtt in` + `iotb-auth` in trusted-topic mode, one message per publication, for comparison.
 */
export type ExternalIngress = 'auth' | 'mqtt-in';

/** The `iotb-mqtt-in` node of the `external` case's flow, if it has one. */
export function mqttInNode(flow: FlowNode[]): FlowNode | undefined {
  return flow.find((n) => n.type === 'iotb-mqtt-in');
}

/** The broker-facing nodes of the `external` case, wired into the shipped pipeline. */
function externalIngress(t: FlowTarget, how: ExternalIngress): FlowNode[] {
  if (how === 'mqtt-in')
    return [
      {
        ...shipped('iotb-mqtt-in', 'external-broker.json'),
        ...t.mqttInSettings,
        id: 'be0c000000000031',
        z: Z,
        registry: t.registryId,
        url: `mqtt://${t.mqttHost}:${t.mqttPort}`,
        clientId: t.clientId,
        wires: [['be0c000000000010'], []],
      },
    ];
  return [
    externalBroker(t),
    mqttIn('buffer', 'be0c000000000030'),
    {
      id: 'be0c000000000030',
      type: 'iotb-auth',
      z: Z,
      registry: t.registryId,
      mode: 'topic',
      windowS: 300,
      topicPrefix: 'devices',
      ratePerS: 0,
      wires: [['be0c000000000010'], []],
    },
  ];
}

function externalFlow(t: FlowTarget): FlowNode[] {
  return [tab, registryNode(t), ...externalIngress(t, t.externalIngress ?? 'mqtt-in'), ...shippedPipeline(t)];
}

function embeddedFlow(t: FlowTarget): FlowNode[] {
  return [
    tab,
    registryNode(t),
    {
      ...shipped('iotb-broker'),
      id: 'be0c000000000040',
      registry: t.registryId,
      host: t.mqttHost,
      port: String(t.mqttPort),
      certFile: '',
      keyFile: '',
      // 1,000 devices connect from one address within seconds: no per-address connect limit or lockout.
      connectRatePerIp: 0,
      lockoutThreshold: 0,
      maxConnections: 100_000,
    },
    {
      ...shipped('iotb-device-in'),
      id: 'be0c000000000041',
      z: Z,
      broker: 'be0c000000000040',
      status: false,
      ack: false,
      connectionEvents: false,
      securityEvents: false,
      wires: [['be0c000000000010'], []],
    },
    ...shippedPipeline(t),
  ];
}

export function ingestFlow(which: IngestCase, t: FlowTarget): FlowNode[] {
  switch (which) {
    case 'stock':
      return stockFlow(t);
    case 'external':
      return externalFlow(t);
    case 'embedded':
      return embeddedFlow(t);
  }
}
