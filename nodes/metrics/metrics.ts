import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { metricsRegistry } from '../lib/metrics';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface MetricsNodeDef extends NodeDef {
  intervalS: number | string;
}

/** iotb-metrics: the pipeline's counters as Prometheus text (for `GET /metrics`) and as an object. */
export = function register(RED: NodeAPI): void {
  function MetricsNode(this: Node, config: MetricsNodeDef): void {
    RED.nodes.createNode(this, config);
    const emit = async (msg: NodeMessageInFlow | Record<string, unknown>): Promise<void> => {
      msg.payload = await metricsRegistry.metrics();
      (msg as Record<string, unknown>).metrics = await metricsRegistry.getMetricsAsJSON();
      (msg as Record<string, unknown>).contentType = metricsRegistry.contentType;
    };

    this.on('input', (msg, send, done) => {
      emit(msg).then(
        () => {
          send(msg);
          done();
        },
        (err: unknown) => done(err as Error),
      );
    });

    const intervalS = numberSetting(config.intervalS, { fallback: 0, above: 0 });
    if (intervalS > 0)
      new NodeGlue(RED, this).every(intervalS * 1000, () => {
        const msg: Record<string, unknown> = { topic: 'metrics' };
        emit(msg).then(
          () => this.send(msg),
          (err: unknown) => this.error(err),
        );
      });
  }
  RED.nodes.registerType('iotb-metrics', MetricsNode);
};
