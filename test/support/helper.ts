/**
 * node-red-node-test-helper bound to the Node-RED in devDependencies (or NODE_RED_HOME for the 5.x leg),
 * loading the built nodes from dist/ so tests exercise what ships.
 */
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
