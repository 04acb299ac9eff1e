/**
 * Messages per second of a node inside a running Node-RED runtime, next to a pass-through node measured in
 * the same runtime and the same run.
 *
 * One Node-RED runtime (the devDependency, or NODE_RED_HOME's) is embedded in this process with a temp user
 * dir and the flow below, built from the cases:
 *
 *   [source] -> [node under test] -> [sink]      one chain per case
 *   [source] -> [pass-through]    -> [sink]      the baseline
 *
 * Source, pass-through and sink are the benchmark-only `bench-pass` node, so every chain pays the same
 * routing cost (Node-RED's asynchronous delivery, hooks) and the ratio isolates the node's own work.
 * Messages enter through `source.send()`, a message counts as processed when the node under test calls
 * `done()` (Node-RED's `onComplete` hook; nodes with two-argument input handlers complete on return), and
 * at most `window` messages are in flight per chain. Rounds alternate between the chains (the order rotates
 * each round) after warm-up rounds, and the median of the rounds is reported.
 *
 * Node-RED cannot be started twice in one process: measure every case of a benchmark script in one call.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../../test/support/servers';
import { median } from './stats';

export interface RateCase {
  /** Shown in the results. */
  name: string;
  /** The node under test: `{ type, ...config }`. The harness sets `id`, `z` and `wires`. */
  node: Record<string, unknown> & { type: string };
  /** Number of outputs of the node under test (all are wired to the sink). Default 1. */
  outputs?: number;
  /**
   * Nodes after the node under test, for measuring a pipeline: each is fed by the first output of the one
   * before it (its other outputs go to the sink), and a message counts when the LAST node completes it.
   */
  then?: { node: Record<string, unknown> & { type: string }; outputs?: number }[];
  /** Messages in flight on this chain (default: the run's `window`), e.g. fewer for batches of readings. */
  window?: number;
  /** Credentials of the node under test. */
  credentials?: Record<string, unknown>;
  /**
   * A fresh message for the i-th input of a round (the node may mutate it). The pass-through is fed by the
   * first case's factory, so both chains carry the same messages.
   */
  message: (i: number) => Record<string, unknown>;
}

export interface RateOptions {
  /** Built node modules to load, e.g. `builtNode('validate')`: the nodes under test and their config nodes. */
  modules: string[];
  cases: RateCase[];
  /** Config nodes (with fixed `id`s) the nodes under test refer to. */
  configNodes?: Record<string, unknown>[];
  /** Credentials of the config nodes, by id. */
  credentials?: Record<string, Record<string, unknown>>;
  /** Measured rounds per chain (default 7) after warm-up rounds (default 2). */
  rounds?: number;
  warmupRounds?: number;
  /** Length of one round in ms (default 1000). */
  roundMs?: number;
  /** Messages in flight per chain (default 200). */
  window?: number;
  /** Extra Node-RED settings (e.g. `functionGlobalContext`). */
  settings?: Record<string, unknown>;
  /** Throw when the node under test completes a message with an error (default true). */
  failOnError?: boolean;
}

export interface RateStats {
  /** Median messages/s over the measured rounds. */
  median: number;
  /** Messages/s of each measured round. */
  rounds: number[];
  /** Messages the node under test completed with `done(err)` (all rounds). */
  errors: number;
}

export interface CaseResult extends RateStats {
  name: string;
  /** median / pass-through median. */
  ratio: number;
}

export interface RateResult {
  nodeRed: string;
  node: string;
  passThrough: RateStats;
  cases: CaseResult[];
}

/** Path of a built node module, e.g. `builtNode('metrics')` -> dist/nodes/metrics/metrics.js. */
export function builtNode(name: string): string {
  return join(repoRoot, 'dist', 'nodes', name, `${name}.js`);
}

interface Completion {
  msg: unknown;
  error?: unknown;
  node: { id: string };
}

/** The slice of Node-RED's embedding API this harness uses. */
interface EmbeddedRed {
  init(server: Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  version(): string;
  nodes: {
    getNode(id: string): { send(msg: unknown): void } | null;
    getType(type: string): unknown;
  };
  events: { once(event: string, cb: () => void): void };
  hooks: {
    add(name: string, fn: (event: Completion) => void): void;
    remove(name: string): void;
  };
  httpNode: (req: IncomingMessage, res: ServerResponse) => void;
}

interface Chain {
  name: string;
  sourceId: string;
  nodeId: string;
  message: (i: number) => Record<string, unknown>;
  completed: number;
  errors: number;
  /** Resolves the round in progress on this chain. */
  onComplete: (() => void) | null;
  rounds: number[];
  window: number | undefined;
}

const PASS_THROUGH = 'pass-through (bench-pass)';

/** Builds the benchmark flow: one source -> node -> sink chain per case, plus the pass-through chain. */
function buildFlow(opts: RateOptions): { flow: Record<string, unknown>[]; chains: Chain[] } {
  const z = 'bench-tab';
  const flow: Record<string, unknown>[] = [{ id: z, type: 'tab', label: 'benchmark' }];
  const chains: Chain[] = [];
  const addChain = (
    key: string,
    name: string,
    stages: { node: Record<string, unknown>; outputs?: number }[],
    message: Chain['message'],
    window?: number,
  ): void => {
    const ids = { source: `${key}-source`, sink: `${key}-sink` };
    const stageId = (k: number): string => (k === 0 ? `${key}-node` : `${key}-node${k}`);
    flow.push({ id: ids.source, z, type: 'bench-pass', wires: [[stageId(0)]] });
    stages.forEach((stage, k) => {
      const next = k + 1 < stages.length ? stageId(k + 1) : ids.sink;
      const wires = Array.from({ length: stage.outputs ?? 1 }, (_, out) => [out === 0 ? next : ids.sink]);
      flow.push({ ...stage.node, id: stageId(k), z, wires });
    });
    flow.push({ id: ids.sink, z, type: 'bench-pass', wires: [[]] });
    chains.push({
      name,
      sourceId: ids.source,
      nodeId: stageId(stages.length - 1),
      message,
      completed: 0,
      errors: 0,
      onComplete: null,
      rounds: [],
      window,
    });
  };
  addChain('pass', PASS_THROUGH, [{ node: { type: 'bench-pass' } }], opts.cases[0].message);
  opts.cases.forEach((c, i) =>
    addChain(
      `case${i}`,
      c.name,
      [{ node: c.node, outputs: c.outputs }, ...(c.then ?? [])],
      c.message,
      c.window,
    ),
  );
  flow.push(...(opts.configNodes ?? []));
  return { flow, chains };
}

/** One round on one chain: keeps `window` messages in flight for `roundMs`, then waits for the rest. */
async function runRound(RED: EmbeddedRed, chain: Chain, roundMs: number, window: number): Promise<number> {
  const source = RED.nodes.getNode(chain.sourceId);
  if (!source) throw new Error(`benchmark flow lost node ${chain.sourceId}`);
  const startCompleted = chain.completed;
  let sent = 0;
  let refillScheduled = false;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(roundMs) * 1_000_000n;
  let sending = true;
  let last = start;

  await new Promise<void>((resolve, reject) => {
    // A node that stops calling done() would hang the round: a watchdog (not a per-message timer, which
    // would cost in the measured path) fails the run when nothing completed for `stallMs`.
    const stallMs = Math.max(10_000, 10 * roundMs);
    let progress = chain.completed;
    let progressAt = Date.now();
    const watchdog = setInterval(() => {
      if (chain.completed !== progress) {
        progress = chain.completed;
        progressAt = Date.now();
      } else if (Date.now() - progressAt > stallMs) {
        clearInterval(watchdog);
        const done = chain.completed - startCompleted;
        reject(
          new Error(
            `${chain.name}: no message completed for ${stallMs} ms (${sent - done} of ${sent} in flight): ` +
              'does the node call done() for every message?',
          ),
        );
      }
    }, 250);
    const finish = (): void => {
      clearInterval(watchdog);
      last = process.hrtime.bigint();
      resolve();
    };
    const refill = (): void => {
      refillScheduled = false;
      if (sending && process.hrtime.bigint() >= deadline) sending = false;
      while (sending && sent - (chain.completed - startCompleted) < window) {
        source.send(chain.message(sent++));
      }
      if (!sending && chain.completed - startCompleted >= sent) finish();
    };
    chain.onComplete = () => {
      const done = chain.completed - startCompleted;
      if (!sending) {
        if (done >= sent) finish();
      } else if (!refillScheduled && sent - done <= window >> 1) {
        // Refill outside the node's done() call stack: a synchronous node would otherwise recurse.
        refillScheduled = true;
        setImmediate(refill);
      }
    };
    refill();
  });
  chain.onComplete = null;
  const elapsedS = Number(last - start) / 1e9;
  return sent / elapsedS;
}

export async function measureNodeRates(opts: RateOptions): Promise<RateResult> {
  if (opts.cases.length === 0) throw new Error('measureNodeRates: no cases');
  const rounds = opts.rounds ?? 7;
  const warmup = opts.warmupRounds ?? 2;
  const roundMs = opts.roundMs ?? 1000;
  const window = opts.window ?? 200;

  const { flow, chains } = buildFlow(opts);
  const credentials: Record<string, Record<string, unknown>> = { ...opts.credentials };
  opts.cases.forEach((c, i) => {
    if (c.credentials) credentials[`case${i}-node`] = c.credentials;
  });
  const userDir = mkdtempSync(join(tmpdir(), 'iotb-node-red-rate-'));
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flow));
  writeFileSync(join(userDir, 'flows_cred.json'), JSON.stringify(credentials));

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const RED = require(
    require.resolve('node-red', { paths: [process.env.NODE_RED_HOME ?? repoRoot] }),
  ) as EmbeddedRed;
  const server = createServer((req, res) => RED.httpNode(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  RED.init(server, {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false, // plain flows_cred.json in the temp dir, written above
    httpAdminRoot: false,
    httpNodeRoot: '/',
    nodesDir: [join(__dirname, 'bench-nodes'), ...new Set(opts.modules.map((m) => dirname(m)))],
    logging: { console: { level: process.env.IOTB_BENCH_LOG ?? 'error', metrics: false, audit: false } },
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    ...opts.settings,
  });

  const byNodeId = new Map(chains.map((c) => [c.nodeId, c]));
  const hook = 'onComplete.iotbBench';
  RED.hooks.add(hook, (event) => {
    const chain = byNodeId.get(event.node.id);
    if (!chain) return;
    chain.completed++;
    if (event.error) chain.errors++;
    chain.onComplete?.();
  });

  try {
    const started = new Promise<void>((resolve) => RED.events.once('flows:started', resolve));
    await RED.start();
    for (const n of flow) {
      const type = n.type as string;
      if (type !== 'tab' && !RED.nodes.getType(type))
        throw new Error(
          `node type ${type} is not registered: build first (npm run build) and list its module`,
        );
    }
    await started;

    for (let r = 0; r < warmup + rounds; r++) {
      // Rotate the order so that drift (GC, JIT, other processes) does not favour one chain.
      const order = chains.map((_, i) => chains[(i + r) % chains.length]);
      for (const chain of order) {
        const rate = await runRound(RED, chain, roundMs, chain.window ?? window);
        if (r >= warmup) chain.rounds.push(rate);
      }
    }
  } finally {
    RED.hooks.remove(hook);
    await RED.stop();
    server.closeAllConnections();
    server.close();
    rmSync(userDir, { recursive: true, force: true });
  }

  const failOnError = opts.failOnError ?? true;
  const [pass, ...cases] = chains;
  const passMedian = median(pass.rounds);
  const result: RateResult = {
    nodeRed: RED.version(),
    node: process.version,
    passThrough: { median: passMedian, rounds: pass.rounds, errors: pass.errors },
    cases: cases.map((c) => {
      if (failOnError && c.errors > 0)
        throw new Error(`${c.name}: ${c.errors} messages completed with an error (see the log above)`);
      const m = median(c.rounds);
      return { name: c.name, median: m, rounds: c.rounds, errors: c.errors, ratio: m / passMedian };
    }),
  };
  return result;
}

/** A plain-text table of a result (medians in messages/s), for benchmark scripts to print. */
export function formatRates(result: RateResult): string {
  const rows = [
    ['chain', 'median msg/s', 'ratio', 'rounds (msg/s)'],
    [PASS_THROUGH, fmt(result.passThrough.median), '1.00', result.passThrough.rounds.map(fmt).join(' ')],
    ...result.cases.map((c) => [c.name, fmt(c.median), c.ratio.toFixed(2), c.rounds.map(fmt).join(' ')]),
  ];
  const widths = rows[0].map((_, col) => Math.max(...rows.map((r) => r[col].length)));
  return [
    `Node-RED ${result.nodeRed} on Node ${result.node}`,
    ...rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col])).join('  ')),
  ].join('\n');
}

function fmt(n: number): string {
  return Math.round(n).toString();
}
