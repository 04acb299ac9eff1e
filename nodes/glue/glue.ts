import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import type { BrokerHolder, DeviceBroker } from '../lib/broker/broker';
import type { ConfigProblemHolder } from '../lib/config-check';
import type { InfluxConnection } from '../lib/influx/connection';
import { ackLedger, type AckIds } from '../lib/ingest/ack-ledger';
import type { Registry, RegistryHolder } from '../lib/registry/registry';
import { rejection, refuseMessage, type RejectionStage } from '../lib/rejection';
import type { TwinService } from '../lib/twin/twin-service';
import { NodeStatus, type StatusView, type TextVars } from './status';
import { nodeStateFile, userFile } from './user-dir';

/** The config nodes other nodes use, and what each holds for them. */
interface ConfigValues {
  registry: Registry;
  broker: DeviceBroker;
  twins: TwinService;
  influx: InfluxConnection;
}
export type ConfigKind = keyof ConfigValues;

/** What `RED.nodes.getNode(id)` returns for any of the config nodes above. */
type ConfigHolder = Node &
  ConfigProblemHolder &
  RegistryHolder &
  BrokerHolder & { connection?: InfluxConnection };

const HOLDER_KIND: Record<ConfigKind, string> = {
  registry: 'registry',
  broker: 'broker',
  twins: 'broker',
  influx: 'influx',
};

function heldBy<K extends ConfigKind>(holder: ConfigHolder, kind: K): ConfigValues[K] | undefined;
function heldBy(holder: ConfigHolder, kind: ConfigKind): ConfigValues[ConfigKind] | undefined {
  switch (kind) {
    case 'registry':
      return holder.registry;
    case 'broker':
      return holder.broker;
    case 'twins':
      return holder.twins;
    case 'influx':
      return holder.connection;
  }
}

/** A node that judges its input refuses messages on its output _rejected_. */
export interface RejectedOutput {
  stage: RejectionStage;
  /** The node's number of outputs. */
  outputs: number;
  /** The rejected output (0-based); the last one when not given. */
  index?: number;
}

/** An emitter whose listeners can be removed again (node:events, and the `EventSource` contracts). */
interface Emitter {
  on(event: string | symbol, listener: (...args: never[]) => void): unknown;
  off(event: string | symbol, listener: (...args: never[]) => void): unknown;
}

type CloseStep = (removed: boolean) => void | Promise<void>;
type Middleware = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

/** Per Node-RED HTTP app: the middlewares of the nodes deployed now, behind one mounted dispatcher. */
const mountedMiddleware = new WeakMap<object, Set<Middleware>>();

/**
 * The glue kit of one node (docs/architecture.md, "How to add a node"): its catalog texts, its status, its
 * config nodes with the one policy for a missing or invalid one, its state files, and everything that must be
 * undone on `close` (listeners, timers, HTTP handlers, resources) registered once and undone in reverse order.
 */
export class NodeGlue {
  private readonly closeSteps: CloseStep[] = [];

  constructor(
    readonly RED: NodeAPI,
    readonly node: Node,
  ) {
    node.on('close', (removed: boolean, done: () => void) => {
      void this.runClose(removed).finally(done);
    });
  }

  /** A text of the node's own catalog (`<node type>.<key>`), translated on the server. */
  t = (key: string, vars?: TextVars): string => this.RED._(`${this.node.type}.${key}`, vars);

  /** The node's status, rendered by `render` on each (throttled) `update()`; cancelled on close. */
  status(render: () => StatusView | undefined = () => undefined, intervalMs = 500): NodeStatus {
    const status = new NodeStatus(this.node, this.t, render, intervalMs);
    this.onClose(() => status.cancel());
    return status;
  }

  /** Runs `step` when the node closes (after the steps registered later); a promise is awaited. */
  onClose(step: CloseStep): void {
    this.closeSteps.push(step);
  }

  /** `fn` every `ms` until the node closes. */
  every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    this.onClose(() => clearInterval(timer));
  }

  /**
   * Binds listeners to `emitter` until the node closes: `const on = glue.listen(broker); on('message', f)`.
   * The returned function has the emitter's own (typed) `on` signature; every listener bound through it is
   * removed with `off` on close, so no node writes on/off pairs by hand. Call it once per event; do not chain
   * on its result (that is the emitter itself).
   */
  listen<T extends Emitter>(emitter: T): T['on'] {
    const on = (event: string | symbol, listener: (...args: never[]) => void): T => {
      emitter.on(event, listener);
      this.onClose(() => {
        emitter.off(event, listener);
      });
      return emitter;
    };
    return on;
  }

  /** Serves `middleware` on Node-RED's HTTP server (`httpNode`) until the node closes. */
  httpMiddleware(middleware: Middleware): void {
    const app = this.RED.httpNode;
    let active = mountedMiddleware.get(app);
    if (!active) {
      // Express cannot remove a middleware: one dispatcher is mounted per app, nodes come and go behind it.
      const set = new Set<Middleware>();
      active = set;
      mountedMiddleware.set(app, set);
      app.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
        const chain = [...set];
        const step = (i: number): void => {
          if (i < chain.length) chain[i](req, res, () => step(i + 1));
          else next();
        };
        step(0);
      });
    }
    active.add(middleware);
    const mounted = active;
    this.onClose(() => {
      mounted.delete(middleware);
    });
  }

  /** A file named in the node's settings (relative to the user directory). */
  userFile(name: string): string {
    return userFile(this.RED, name);
  }

  /**
   * This node's state file, `<userDir>/iotb-<kind>/<node id><suffix>`; a file under one of the `legacy` names
   * is moved there on first start (and logged).
   */
  stateFile(kind: string, suffix: string, legacy: readonly string[] = []): string {
    return nodeStateFile(this.RED, kind, this.node.id, suffix, legacy, (from, to) =>
      this.node.log(`moved ${from} to ${to}`),
    );
  }

  /** A config node's value when one is chosen and ready; nothing is reported when it is not. */
  optionalConfig<K extends ConfigKind>(kind: K, id: string | undefined): ConfigValues[K] | undefined {
    const holder = id ? (this.RED.nodes.getNode(id) as ConfigHolder | null) : null;
    return holder ? heldBy(holder, kind) : undefined;
  }

  /**
   * A config node the node cannot work without. When it is missing, or could not start (its `configProblem`),
   * the one policy (docs/architecture.md, "Missing or invalid config node"):
   * - the status is a red ring with the reason, from the node's catalog (`config.no<Kind>`, or
   *   `config.<kind>Invalid` with the config node's problem);
   * - the reason is logged once: by this node for a missing config node; a config node with invalid settings
   *   has logged its problem itself, once for all the nodes that use it;
   * - every input message ends with the reason: a node with a rejected output refuses it there (counted,
   *   `msg.rejection` code NO_CONFIG or CONFIG_INVALID, its held acknowledgement failed, HTTP 503); any other
   *   node ends it with `done(err)`, so Catch nodes see it.
   */
  requireConfig<K extends ConfigKind>(
    kind: K,
    id: string | undefined,
    rejected?: RejectedOutput,
  ): ConfigValues[K] | undefined {
    const holder = id ? (this.RED.nodes.getNode(id) as ConfigHolder | null) : null;
    const value = holder ? heldBy(holder, kind) : undefined;
    if (value !== undefined) return value;
    const problem = holder?.configProblem;
    const capitalized = `${kind.charAt(0).toUpperCase()}${kind.slice(1)}`;
    if (problem === undefined) this.cannotWork(this.t(`config.no${capitalized}`), 'NO_CONFIG', rejected);
    else
      // The config node has logged its problem, once for every node that uses it.
      this.cannotWork(
        this.t(`config.${HOLDER_KIND[kind]}Invalid`, { problem }),
        'CONFIG_INVALID',
        rejected,
        false,
      );
    return undefined;
  }

  /**
   * The node cannot work (a missing config node, settings or a store that cannot be used): the policy of
   * `requireConfig` with `reason`: a red ring, the reason logged once (unless `log` is false because it was
   * logged already), and every input message refused on the rejected output or ended with `done(err)`.
   */
  cannotWork(reason: string, code: string, rejected?: RejectedOutput, log = true): void {
    this.node.status({ fill: 'red', shape: 'ring', text: reason });
    if (log) this.node.error(reason);
    this.node.on(
      'input',
      (msg: NodeMessage, send: (m: (NodeMessage | null)[]) => void, done: (err?: Error) => void) => {
        if (!rejected) return done(new Error(reason));
        ackLedger.settle(msg.ackId as AckIds, 'failed');
        refuseMessage(msg, rejection(rejected.stage, code, reason));
        const out = new Array<NodeMessage | null>(rejected.outputs).fill(null);
        out[rejected.index ?? rejected.outputs - 1] = msg;
        send(out);
        done();
      },
    );
  }

  private async runClose(removed: boolean): Promise<void> {
    for (const step of this.closeSteps.splice(0).reverse()) {
      try {
        await step(removed);
      } catch (err) {
        this.node.error(err);
      }
    }
  }
}

/** The node's credentials: Node-RED leaves them unset when none were saved, although the type says otherwise. */
export function credentialsOf<C extends object>(node: { credentials?: C }): Partial<C> {
  return node.credentials ?? {};
}
