import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { runQuery, toChart, type QueryLanguage } from '../lib/influx/query';
import type { InfluxConfigNode } from '../influx/types';

interface InfluxQueryDef extends NodeDef {
  influx: string;
  language: QueryLanguage;
  query: string;
  params: string;
}

/**
 * iotb-influx-query: the configured query (or msg.query when none is configured) with msg.params bound as
 * parameters; rows in msg.payload, chart series in msg.chart.
 */
export = function register(RED: NodeAPI): void {
  function InfluxQueryNode(this: Node, config: InfluxQueryDef): void {
    RED.nodes.createNode(this, config);
    const influx = RED.nodes.getNode(config.influx) as InfluxConfigNode | null;
    const connection = influx?.connection;
    const noConnection = influx
      ? RED._('iotb-influx-query.status.configInvalid', { problem: influx.configProblem ?? '' })
      : RED._('iotb-influx-query.error.noConfig');
    if (!connection) this.status({ fill: 'red', shape: 'ring', text: noConnection });
    let fixedParams: Record<string, unknown> = {};
    try {
      fixedParams = config.params ? (JSON.parse(config.params) as Record<string, unknown>) : {};
    } catch {
      this.error(RED._('iotb-influx-query.error.params'));
    }
    this.on('input', (msg: NodeMessageInFlow, send, done) => {
      const m = msg as NodeMessageInFlow & { query?: unknown; params?: unknown; chart?: unknown };
      if (!connection) return done(new Error(noConnection));
      const query = config.query || (typeof m.query === 'string' ? m.query : '');
      if (!query) return done(new Error(RED._('iotb-influx-query.error.noQuery')));
      const params = {
        ...fixedParams,
        ...(typeof m.params === 'object' && m.params !== null ? (m.params as Record<string, unknown>) : {}),
      };
      this.status({ fill: 'blue', shape: 'dot', text: RED._('iotb-influx-query.status.querying') });
      runQuery(connection, { language: config.language || 'influxql', query, params }).then(
        (rows) => {
          m.payload = rows;
          m.chart = toChart(rows);
          this.status({
            fill: 'green',
            shape: 'dot',
            text: RED._('iotb-influx-query.status.rows', { count: rows.length }),
          });
          send(m);
          done();
        },
        (err: Error) => {
          this.status({ fill: 'red', shape: 'ring', text: RED._('iotb-influx-query.status.failed') });
          done(err);
        },
      );
    });
  }
  RED.nodes.registerType('iotb-influx-query', InfluxQueryNode);
};
