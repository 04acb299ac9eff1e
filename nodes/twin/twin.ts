import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { rejection } from '../lib/rejection';
import { NodeGlue } from '../glue/glue';
import { runTwinOperation, TWIN_OPERATIONS, type TwinOperation } from '../lib/twin/operations';
import { TwinError, type TwinView } from '../lib/twin/twin-service';

interface TwinNodeDef extends NodeDef {
  broker: string;
  /** Send twin changes on outputs 1 and 2 (one node per broker should, or changes are stored twice). */
  changes?: boolean;
}

type Msg = NodeMessageInFlow & {
  req?: {
    method?: string;
    params?: Record<string, string>;
    query?: Record<string, unknown>;
    headers?: Record<string, string | undefined>;
  };
  [k: string]: unknown;
};

/** The operation a message asks for: msg.operation, else from the HTTP request, else a desired patch. */
function operationOf(msg: Msg): unknown {
  if (msg.operation !== undefined) return msg.operation;
  const method = msg.req?.method?.toUpperCase();
  if (method === 'GET') return msg.req?.params?.id === undefined ? 'list' : 'get';
  return 'patchDesired';
}

function isOperation(v: unknown): v is TwinOperation {
  return TWIN_OPERATIONS.includes(v as TwinOperation);
}

/** A twin change as a `device_events` point (event `twin`) for iotb-influx-write. */
function twinPoint(side: 'desired' | 'reported', view: TwinView, at: number): Record<string, unknown> {
  const doc = view[side];
  return {
    measurement: 'device_events',
    tags: { device: view.deviceId, event: 'twin', side },
    fields: {
      version: doc.version,
      state: JSON.stringify(doc.state),
      delta: JSON.stringify(view.delta),
      pending: Object.keys(view.delta).length,
    },
    timestamp: at,
  };
}

/**
 * iotb-twin: device twins of an iotb-broker (logic in nodes/lib/twin). Input: a desired patch from a flow, or
 * the twin HTTP API between `iotb-auth` and `http response`. Outputs: 1 twin changes, 2 the same as
 * `device_events` points, 3 answers, 4 refusals.
 */
export = function register(RED: NodeAPI): void {
  function TwinNode(this: Node, config: TwinNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const twins = glue.requireConfig('twins', config.broker, { stage: 'twin', outputs: 4 });
    if (!twins) return;
    let desiredChanges = 0;
    let reportedChanges = 0;
    const status = glue.status(() => ({
      fill: 'green',
      shape: 'dot',
      key: 'status.counts',
      vars: { twins: twins.size, desired: desiredChanges, reported: reportedChanges },
    }));
    status.update();

    const onDesired = (deviceId: string, view: TwinView): void => {
      desiredChanges++;
      status.update();
      const payload = structuredClone(view);
      this.send([
        { topic: `twin/desired`, deviceId, payload, delta: payload.delta },
        { topic: 'twin', payload: twinPoint('desired', view, Date.now()) },
        null,
        null,
      ]);
    };
    const onReported = (deviceId: string, view: TwinView, patch: Record<string, unknown>): void => {
      reportedChanges++;
      status.update();
      const payload = structuredClone(view);
      this.send([
        { topic: `twin/reported`, deviceId, payload, patch: structuredClone(patch), delta: payload.delta },
        { topic: 'twin', payload: twinPoint('reported', view, Date.now()) },
        null,
        null,
      ]);
    };
    if (config.changes !== false) {
      const on = glue.listen(twins);
      on('desired', onDesired);
      on('reported', onReported);
    }

    this.on('input', (m, send, done) => {
      const msg = m as Msg;
      const operation = operationOf(msg);
      try {
        if (!isOperation(operation))
          throw new TwinError(
            'INVALID',
            `unknown operation "${String(operation)}"; one of ${TWIN_OPERATIONS.join(', ')}`,
          );
        const result = runTwinOperation(twins, {
          operation,
          deviceId: msg.req?.params?.id ?? msg.deviceId,
          body: msg.payload,
          ifMatch: msg.req ? msg.req.headers?.['if-match'] : msg.version,
          query: msg.req?.query,
        });
        msg.statusCode = result.statusCode;
        msg.payload = structuredClone(result.payload);
        if (result.headers) msg.headers = { ...(msg.headers as object | undefined), ...result.headers };
        send([null, null, msg, null]);
        done();
      } catch (err) {
        if (!(err instanceof TwinError)) {
          msg.statusCode = 500;
          msg.payload = { code: 'INTERNAL', reason: 'the twin could not be stored' };
          send([null, null, null, msg]);
          return done(err as Error);
        }
        msg.rejection = rejection('twin', err.code, err.reason, { operation });
        msg.statusCode = err.status;
        msg.payload = { code: err.code, reason: err.reason };
        send([null, null, null, msg]);
        done();
      }
    });
  }
  RED.nodes.registerType('iotb-twin', TwinNode);
};
