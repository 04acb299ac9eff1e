/**
 * node-red-node-test-helper bound to the Node-RED in devDependencies (or NODE_RED_HOME for the 5.x leg),
 * loading the built nodes from dist/ so tests exercise what ships.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './servers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper') as NodeRedTestHelper;

export interface TestNode {
  id: string;
  on(event: string, cb: (msg: any) => void): void;
  receive(msg: unknown): void;
  [k: string]: any;
}

export interface NodeRedTestHelper {
  init(nodeRedRuntime: string, settings?: Record<string, unknown>): void;
  load(nodes: unknown, flow: unknown[], credentials?: Record<string, unknown>): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): TestNode;
  startServer(): Promise<void>;
  stopServer(): Promise<void>;
  settings(s: Record<string, unknown>): void;
  request(): any;
  log(): any;
  clearFlows(): Promise<void>;
}

helper.init(require.resolve('node-red', { paths: [process.env.NODE_RED_HOME ?? repoRoot] }));
export { helper };

/** The built node module for `name`, e.g. `nodeModule('metrics')` -> dist/nodes/metrics/metrics.js. */
export function nodeModule(name: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(join(repoRoot, 'dist', 'nodes', name, `${name}.js`));
}

/** Resolves with the next message `node` receives. */
export function nextMessage(node: TestNode): Promise<any> {
  return new Promise((resolve) => node.on('input', resolve));
}

/** What a helper node has received, in order, with waits on it. */
export interface ReceivedMessages {
  readonly msgs: any[];
  /** The first message that matches `pred`: one already received, or the next one to arrive that does. */
  next(pred?: (m: any) => boolean): Promise<any>;
  /** The first `n` messages, once they have arrived. */
  count(n: number): Promise<any[]>;
}

/** Starts recording what `node` receives (before the flow sends it anything, so nothing is missed). */
export function received(node: TestNode): ReceivedMessages {
  const msgs: any[] = [];
  const waiters = new Set<() => boolean>();
  /** Resolves with `probe()` as soon as it is defined: now, or after a message arrives. */
  const when = <T>(probe: () => T | undefined): Promise<T> =>
    new Promise((resolve) => {
      const check = (): boolean => {
        const v = probe();
        if (v === undefined) return false;
        resolve(v);
        return true;
      };
      if (!check()) waiters.add(check);
    });
  node.on('input', (m: any) => {
    msgs.push(m);
    for (const check of waiters) if (check()) waiters.delete(check);
  });
  return {
    msgs,
    next: (pred = () => true) => when((): unknown => msgs.find(pred)),
    count: (n) => when(() => (msgs.length >= n ? msgs.slice(0, n) : undefined)),
  };
}

/**
 * Like `nodeModule`, but the node's `RED._` reads its en-US message catalog and fills in `__name__`
 * placeholders, so a test sees the status and log texts a user sees (the helper's own `RED._` returns the key).
 */
export function nodeModuleWithMessages(name: string): unknown {
  const register = nodeModule(name) as (RED: Record<string, unknown>) => void;
  const file = join(repoRoot, 'nodes', name, 'locales', 'en-US', `${name}.json`);
  const catalog = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const translate = (key: string, vars: Record<string, unknown> = {}): string => {
    const text = key
      .split('.')
      .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], catalog);
    return typeof text === 'string'
      ? text.replace(/__(\w+)__/g, (_, v: string) => `${(vars[v] as string | number | undefined) ?? ''}`)
      : key;
  };
  return (RED: Record<string, unknown>) =>
    register(new Proxy(RED, { get: (target, prop) => (prop === '_' ? translate : target[prop as string]) }));
}

/**
 * Records what several helper nodes receive (the outputs of the node under test, e.g. `{ ok, bad }`) and
 * resolves once `count` messages have arrived in all; later ones are still recorded.
 */
export function receivedUntil<K extends string>(
  nodes: Record<K, TestNode>,
  count: number,
): Promise<Record<K, any[]>> {
  const got = {} as Record<K, any[]>;
  let total = 0;
  return new Promise((resolve) => {
    for (const key of Object.keys(nodes) as K[]) {
      const list: any[] = (got[key] = []);
      nodes[key].on('input', (m: any) => {
        list.push(m);
        if (++total === count) resolve(got);
      });
    }
  });
}
