/**
 * A real `node-red` process with this package loaded from the checkout (`nodesDir`), a flow of the test's
 * choosing, a temp user dir and a free port. Uses the built package: run `npm run build` first (`npm test` does).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  freePort,
  repoRoot,
  startProcess,
  tempDir,
  waitForOutput,
  waitForPort,
  type ManagedProcess,
} from './servers';

export interface NodeRedOptions {
  flows: unknown[];
  /** Node ids -> credentials, written through the admin API so they land encrypted in flows_cred.json. */
  credentials?: Record<string, Record<string, unknown>>;
  env?: Record<string, string>;
  /** Node binary; defaults to this process's. */
  nodeBin?: string;
  /** Directory holding node-red's red.js; defaults to the devDependency. */
  redJs?: string;
  /** Extra settings, JSON-serialisable. */
  settings?: Record<string, unknown>;
  /** Use this user dir (the caller removes it) instead of a fresh temp dir, e.g. one with packages installed. */
  userDir?: string;
  /** Runs with the fresh user dir before the first start (e.g. to seed a state file). */
  prepareUserDir?: (userDir: string) => void;
  /** The editor and HTTP port, for a flow that must know it before the start; a free port by default. */
  port?: number;
}

export interface NodeRedProcess {
  port: number;
  url: string;
  userDir: string;
  proc: ManagedProcess;
  /** Resolves when the process has printed a line matching `re` (now or later). */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Stops gracefully and starts again with the same user dir and port. */
  restart(): Promise<void>;
  /** SIGKILL (a crash), then start again with the same user dir and port. */
  crashAndRestart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startNodeRed(opts: NodeRedOptions): Promise<NodeRedProcess> {
  const dir = opts.userDir ? { path: opts.userDir, remove: () => undefined } : tempDir('node-red');
  const port = opts.port ?? (await freePort());
  const settings = {
    uiHost: '127.0.0.1',
    uiPort: port,
    userDir: dir.path,
    nodesDir: [repoRoot],
    flowFile: 'flows.json',
    credentialSecret: 'test-only-credential-secret',
    logging: { console: { level: 'info', metrics: false, audit: false } },
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    editorTheme: { tours: false },
    ...opts.settings,
  };
  writeFileSync(join(dir.path, 'settings.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  writeFileSync(join(dir.path, 'flows.json'), JSON.stringify(opts.flows));
  opts.prepareUserDir?.(dir.path);
  const redJs = opts.redJs ?? require.resolve('node-red/red.js');
  const launch = (): ManagedProcess =>
    startProcess(opts.nodeBin ?? process.execPath, [redJs, '--settings', join(dir.path, 'settings.js')], {
      env: { ...process.env, ...opts.env, NODE_RED_HOME: dir.path },
    });

  const url = `http://127.0.0.1:${port}`;
  // node-red starts the flows before it listens (red.js): "Started flows" alone can come before the port opens.
  const ready = async (): Promise<void> => {
    await nr.waitForOutput(/Started flows/);
    await waitForPort(port, nr.proc.child);
  };
  const nr: NodeRedProcess = {
    port,
    url,
    userDir: dir.path,
    proc: launch(),
    waitForOutput(re, timeoutMs = 30_000) {
      return waitForOutput(nr.proc, re, timeoutMs);
    },
    async restart() {
      await nr.proc.stop();
      nr.proc = launch();
      await ready();
    },
    async crashAndRestart() {
      await nr.proc.kill9();
      nr.proc = launch();
      await ready();
    },
    async stop() {
      await nr.proc.stop();
      dir.remove();
    },
  };
  try {
    await ready();
    if (opts.credentials) await deployWithCredentials(nr, opts.flows, opts.credentials);
  } catch (err) {
    await nr.stop();
    throw err;
  }
  return nr;
}

/**
 * Full deploy through the admin API; credentials travel inside each node object as Node-RED expects.
 * Node-RED answers before the redeployed flows have started, so this waits for their "Started flows".
 */
async function deployWithCredentials(
  nr: NodeRedProcess,
  flows: unknown[],
  credentials: Record<string, Record<string, unknown>>,
): Promise<void> {
  const withCreds = flows.map((n) => {
    const node = n as { id: string };
    const creds = credentials[node.id];
    return creds ? { ...node, credentials: creds } : node;
  });
  const startsBefore = nr.proc.output().split('Started flows').length - 1;
  const res = await fetch(`${nr.url}/flows`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(withCreds),
  });
  if (res.status !== 204 && res.status !== 200)
    throw new Error(`deploy failed: ${res.status} ${await res.text()}`);
  await nr.waitForOutput(new RegExp(`(?:Started flows[\\s\\S]*?){${startsBefore + 1}}`));
}
