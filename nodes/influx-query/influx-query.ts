import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { runQuery, toChart, type QueryLanguage } from '../lib/influx/query';
import { NodeGlue } from '../glue/glue';

interface InfluxQueryDef extends NodeDef {
  influx: string;
  language?: QueryLanguage;
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
    const glue = new NodeGlue(RED, this);
    const connection = glue.requireConfig('influx', config.influx);
    if (!connection) return;
    // Per query, throttled: a burst of queries does not flood the editor.
    const status = glue.status();
    let fixedParams: Record<string, unknown> = {};
    try {
      fixedParams = config.params ? (JSON.parse(config.params) as Record<string, unknown>) : {};
    } catch {
      this.error(glue.t('error.params'));
    }
    this.on('input', (msg: NodeMessageInFlow, send, done) => {
      const m = msg as NodeMessageInFlow & { query?: unknown; params?: unknown; chart?: unknown };
      const query = config.query || (typeof m.query === 'string' ? m.query : '');
      if (!query) return done(new Error(glue.t('error.noQuery')));
      const params = {
        ...fixedParams,
        ...(typeof m.params === 'object' && m.params !== null ? (m.params as Record<string, unknown>) : {}),
      };
      status.update({ fill: 'blue', shape: 'dot', key: 'status.querying' });
      runQuery(connection, { language: config.language || 'influxql', query, params }).then(
        (rows) => {
          m.payload = rows;
          m.chart = toChart(rows);
          status.update({ fill: 'green', shape: 'dot', key: 'status.rows', vars: { count: rows.length } });
          send(m);
          done();
        },
        (err: unknown) => {
          status.update({ fill: 'red', shape: 'ring', key: 'status.failed' });
          done(err as Error);
        },
      );
    });
  }
  RED.nodes.registerType('iotb-influx-query', InfluxQueryNode);
};
