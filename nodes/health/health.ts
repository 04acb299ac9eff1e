import type { Node, NodeAPI, NodeDef } from 'node-red';
import {
  healthHttpStatus,
  healthReport,
  type BrokerHealthHolder,
  type WriterHealthHolder,
} from '../lib/health';
import { NodeGlue } from '../glue/glue';

/**
 * iotb-health: on every input, the health of every embedded broker and InfluxDB writer deployed in this
 * Node-RED, as msg.payload with msg.statusCode (200/503) for an http response.
 */
export = function register(RED: NodeAPI): void {
  function HealthNode(this: Node, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const status = new NodeGlue(RED, this).status();
    type Probed = Node & BrokerHealthHolder & WriterHealthHolder;
    const instancesOf = (type: string): { id: string; node: Probed }[] => {
      const found: { id: string; node: Probed }[] = [];
      RED.nodes.eachNode((n) => {
        if (n.type !== type) return;
        const node = RED.nodes.getNode(n.id) as Probed | null;
        if (node) found.push({ id: n.id, node });
      });
      return found;
    };

    this.on('input', (msg, send, done) => {
      const brokers = instancesOf('iotb-broker').flatMap(({ id, node }) =>
        node.broker ? [{ id, probe: node.broker }] : [],
      );
      const writers = instancesOf('iotb-influx-write').map(({ id, node }) => ({
        id,
        name: node.name,
        snapshot: node.writerSnapshot?.(),
      }));
      const report = healthReport(brokers, writers);
      msg.payload = report;
      (msg as { statusCode?: number }).statusCode = healthHttpStatus(report);
      status.update({
        fill: report.status === 'ok' ? 'green' : report.status === 'degraded' ? 'yellow' : 'red',
        shape: 'dot',
        key: `status.${report.status}`,
      });
      send(msg);
      done();
    });
  }
  RED.nodes.registerType('iotb-health', HealthNode);
};
