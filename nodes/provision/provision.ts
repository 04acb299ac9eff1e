import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { OPERATIONS, runOperation, statusOf, type Operation } from '../lib/provision/operations';
import { RegistryError } from '../lib/registry/registry';
import { rejection } from '../lib/rejection';
import { NodeGlue } from '../glue/glue';

interface ProvisionNodeDef extends NodeDef {
  registry: string;
  broker: string;
  operation?: Operation | 'msg';
}

type Msg = NodeMessageInFlow & {
  req?: { params?: Record<string, string>; query?: Record<string, unknown> };
  [k: string]: unknown;
};

const isOperation = (v: unknown): v is Operation => (OPERATIONS as readonly unknown[]).includes(v);

/**
 * iotb-provision: registry operations driven by messages; with `http in` -> `iotb-auth` -> this ->
 * `http response` it is the HTTP API of docs/backend.md. Output 1 done, output 2 refused; both carry
 * `msg.statusCode` and `msg.payload` ready for an `http response`.
 */
export = function register(RED: NodeAPI): void {
  function ProvisionNode(this: Node, config: ProvisionNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const registry = glue.requireConfig('registry', config.registry, { stage: 'registry', outputs: 2 });
    if (!registry) return;
    // Optional: with a broker, revoking a device also disconnects it.
    const broker = glue.optionalConfig('broker', config.broker);
    const status = glue.status(() => ({
      fill: 'green',
      shape: 'dot',
      key: 'status.devices',
      vars: { count: registry.size },
    }));
    status.update();

    this.on('input', (m, send, done) => {
      const msg = m as Msg;
      const operation: unknown =
        config.operation === 'msg' || !config.operation ? msg.operation : config.operation;
      try {
        if (!isOperation(operation))
          throw new RegistryError(
            'INVALID',
            `unknown operation "${String(operation)}"; one of ${OPERATIONS.join(', ')}`,
          );
        const target = msg.req?.params?.id ?? msg.target;
        const result = runOperation(registry, broker, {
          operation,
          id: typeof target === 'string' ? target : undefined,
          body: msg.payload,
          query: msg.req?.query,
        });
        msg.statusCode = result.statusCode;
        msg.payload = result.payload;
        status.update();
        send([msg, null]);
        done();
      } catch (err) {
        if (!(err instanceof RegistryError)) {
          msg.statusCode = 500;
          msg.payload = { error: 'INTERNAL', reason: 'the registry could not complete the operation' };
          send([null, msg]);
          return done(err as Error);
        }
        msg.rejection = rejection('registry', err.code, err.message, { operation });
        msg.statusCode = statusOf(err);
        msg.payload = { error: err.code, reason: err.message };
        send([null, msg]);
        done();
      }
    });
  }
  RED.nodes.registerType('iotb-provision', ProvisionNode, {
    settings: { iotbProvisionOperations: { value: OPERATIONS, exportable: true } },
  });
};
