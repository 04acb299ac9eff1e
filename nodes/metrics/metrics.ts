import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { metricsRegistry } from '../lib/metrics';

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

    const intervalS = Number(config.intervalS);
    if (intervalS > 0) {
      const timer = setInterval(() => {
        const msg: Record<string, unknown> = { topic: 'metrics' };
        emit(msg).then(
          () => this.send(msg),
          (err: unknown) => this.error(err),
        );
      }, intervalS * 1000);
      this.on('close', () => clearInterval(timer));
    }
  }
  RED.nodes.registerType('iotb-metrics', MetricsNode);
};
