import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import type { BrokerHolder } from '../lib/broker/broker';
import { OPERATIONS, runOperation, statusOf, type Operation } from '../lib/provision/operations';
import { RegistryError, type RegistryHolder } from '../lib/registry/registry';
import { rejection } from '../lib/rejection';
import { Throttle } from '../lib/throttle';

interface ProvisionNodeDef extends NodeDef {
  registry: string;
  broker: string;
  operation: Operation | 'msg';
}

type Msg = NodeMessageInFlow & {
  req?: { params?: Record<string, string>; query?: Record<string, unknown> };
  [k: string]: unknown;
};

/**
 * iotb-provision: registry operations driven by messages; with `http in` -> `iotb-auth` -> this ->
 * `http response` it is the HTTP API of docs/backend.md. Output 1 done, output 2 refused; both carry
 * `msg.statusCode` and `msg.payload` ready for an `http response`.
 */
export = function register(RED: NodeAPI): void {
  function ProvisionNode(this: Node, config: ProvisionNodeDef): void {
    RED.nodes.createNode(this, config);
    const registry = (RED.nodes.getNode(config.registry) as (Node & RegistryHolder) | null)?.registry;
    const broker = config.broker
      ? (RED.nodes.getNode(config.broker) as (Node & BrokerHolder) | null)?.broker
      : undefined;
    if (!registry) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-provision.status.noRegistry' });
      this.error(RED._('iotb-provision.error.noRegistry'));
      return;
    }
    const status = new Throttle(() => {
      this.status({
        fill: 'green',
        shape: 'dot',
        text: RED._('iotb-provision.status.devices', { count: registry.size }),
      });
    }, 500);
    status.call();

    this.on('input', (m, send, done) => {
      const msg = m as Msg;
      const operation = (
        config.operation === 'msg' || !config.operation ? msg.operation : config.operation
      ) as Operation;
      try {
        if (!OPERATIONS.includes(operation))
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
        status.call();
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
    this.on('close', () => status.cancel());
  }
  RED.nodes.registerType('iotb-provision', ProvisionNode, {
    settings: { iotbProvisionOperations: { value: OPERATIONS, exportable: true } },
  });
};
