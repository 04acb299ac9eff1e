/**
 * Real servers for tests, started on free loopback ports in temp dirs and stopped again:
 * InfluxDB 1.x (Debian `influxdb`), Mosquitto, VictoriaMetrics, Prometheus, Alertmanager, and a `node-red`
 * process running a flow with this package loaded. A missing binary fails the test with how to install it; nothing is skipped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createDatabase, findBinary, freeLoopbackPort, influxdConfig } from '../../nodes/lib/local-influxd';

export const repoRoot = resolve(__dirname, '..', '..');

/** A free port of 127.0.0.1 (the same helper `npm start` uses for its influxd). */
export const freePort = freeLoopbackPort;

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `iotb-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Throws a message that says how to install `bin` when it is not on this machine. */
export function requireBinary(bin: string, debianPackage: string): string {
  const path = findBinary(bin);
  if (path === undefined)
    throw new Error(
      `${bin} is not installed: run \`apt-get install -y ${debianPackage}\` (.ci/run does this)`,
    );
  return path;
}

/** Resolves once something accepts TCP connections on host:port, or rejects when `child` exits first. */
export async function waitForPort(
  port: number,
  child?: ChildProcess,
  timeoutMs = 30_000,
  host = '127.0.0.1',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null)
      throw new Error(`process exited with ${child.exitCode} before port ${port} opened`);
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50)); // poll interval: no event tells us a foreign process bound a port
  }
}

/** Polls an HTTP URL until it answers with `status`. */
export async function waitForHttp(
  url: string,
  status: number,
  child?: ChildProcess,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null)
      throw new Error(`process exited with ${child.exitCode} before ${url} answered`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === status) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Polls `probe` (a foreign process answers) until it returns a value, or fails after `timeoutMs`. `what` names
 * what is awaited; as a function it is asked at the failure, so the message can say what was seen by then.
 */
export async function eventually<T>(
  what: string | (() => string),
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** `eventually` for a condition on what this process has seen (messages received, a counter). */
export function until(what: string | (() => string), cond: () => boolean, timeoutMs?: number): Promise<true> {
  return eventually(what, () => (cond() ? true : undefined), timeoutMs);
}

export interface ManagedProcess {
  child: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** True once the process has exited and its output has been read to the end. */
  closed(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL: a crash. */
  kill9(): Promise<void>;
}

const live = new Set<ManagedProcess>();
process.on('exit', () => {
  for (const p of live) p.child.kill('SIGKILL');
});

export function startProcess(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ManagedProcess {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer): void => {
    out += b.toString();
    if (out.length > 1_000_000) out = out.slice(-500_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let closed = false;
  child.once('close', () => (closed = true));
  const exited = child.exitCode !== null ? Promise.resolve() : once(child, 'exit').then(() => undefined);
  const proc: ManagedProcess = {
    child,
    output: () => out,
    closed: () => closed,
    async stop(graceMs = 10_000) {
      live.delete(proc);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    async kill9() {
      live.delete(proc);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  live.add(proc);
  return proc;
}

/** Resolves with the first match of `re` in what `proc` printed (now or later); rejects on exit or timeout. */
export function waitForOutput(
  proc: ManagedProcess,
  re: RegExp,
  timeoutMs = 30_000,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = re.exec(proc.output());
      if (m) {
        cleanup();
        resolve(m);
        return true;
      }
      return false;
    };
    const onExit = (): void => {
      // Output still in the pipes is read before 'exit' only sometimes: look once more.
      if (check()) return;
      cleanup();
      reject(new Error(`process exited before printing ${re}\n${proc.output()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`process did not print ${re} within ${timeoutMs} ms\n${proc.output()}`));
    }, timeoutMs);
    const onData = (): void => void check();
    function cleanup(): void {
      clearTimeout(timer);
      proc.child.stdout?.off('data', onData);
      proc.child.stderr?.off('data', onData);
      proc.child.off('close', onExit);
    }
    if (check()) return;
    if (proc.closed()) {
      onExit();
      return;
    }
    proc.child.stdout?.on('data', onData);
    proc.child.stderr?.on('data', onData);
    proc.child.once('close', onExit);
  });
}

export interface Server {
  port: number;
  url: string;
  dir: string;
  proc: ManagedProcess;
  /** Stops the process (keeping its data dir) and starts it again on the same port. */
  restart(): Promise<void>;
  /** Stops the process without removing data; `start()` brings it back. */
  pause(): Promise<void>;
  start(): Promise<void>;
  /** Stops and removes the data dir. */
  stop(): Promise<void>;
}

function managedServer(
  name: string,
  port: number,
  url: string,
  dir: { path: string; remove(): void },
  launch: () => ManagedProcess,
  ready: (p: ManagedProcess) => Promise<void>,
): Promise<Server> {
  const server: Server = {
    port,
    url,
    dir: dir.path,
    proc: launch(),
    async start() {
      server.proc = launch();
      try {
        await ready(server.proc);
      } catch (err) {
        await server.proc.stop();
        throw new Error(`${name} did not start: ${(err as Error).message}\n${server.proc.output()}`);
      }
    },
    async pause() {
      await server.proc.stop();
    },
    async restart() {
      await server.proc.stop();
      await server.start();
    },
    async stop() {
      await server.proc.stop();
      dir.remove();
    },
  };
  return ready(server.proc).then(
    () => server,
    async (err: unknown) => {
      await server.proc.stop();
      dir.remove();
      throw new Error(`${name} did not start: ${(err as Error).message}\n${server.proc.output()}`);
    },
  );
}

/**
 * InfluxDB 1.x (`influxd` from Debian `influxdb`): HTTP API on a free port, data in a temp dir. `database` is
 * created once it answers (without auth); it outlives pause/start, which keep the data dir.
 */
export async function startInfluxd(opts: { authEnabled?: boolean; database?: string } = {}): Promise<Server> {
  const bin = requireBinary('influxd', 'influxdb');
  const dir = tempDir('influxd');
  const port = await freePort();
  const rpcPort = await freePort();
  const conf = join(dir.path, 'influxdb.conf');
  writeFileSync(
    conf,
    influxdConfig(dir.path, { http: port, rpc: rpcPort }, { authEnabled: opts.authEnabled }),
  );
  const url = `http://127.0.0.1:${port}`;
  const server = await managedServer(
    'influxd',
    port,
    url,
    dir,
    () => startProcess(bin, ['-config', conf]),
    (p) => waitForHttp(`${url}/ping`, 204, p.child),
  );
  if (opts.database) {
    try {
      await createDatabase(url, opts.database);
    } catch (err) {
      await server.stop();
      throw err;
    }
  }
  return server;
}

/** The rows an InfluxQL query returns from influxd; times as RFC 3339 text, or as numbers with `epoch`. */
export async function influxRows(
  url: string,
  db: string,
  q: string,
  epoch?: 'ms',
): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, ...(epoch ? { epoch } : {}) })}`);
  const json = (await res.json()) as {
    results?: { series?: { columns: string[]; values: unknown[][] }[] }[];
  };
  const rows: Record<string, unknown>[] = [];
  for (const s of json.results?.[0]?.series ?? [])
    for (const v of s.values) rows.push(Object.fromEntries(s.columns.map((c, i) => [c, v[i]])));
  return rows;
}

/** Mosquitto 2.x. `extraConfig` lines are appended (e.g. `max_queued_messages 100000` — say why in the test). */
export async function startMosquitto(opts: { extraConfig?: string[] } = {}): Promise<Server> {
  const bin = requireBinary('mosquitto', 'mosquitto');
  const dir = tempDir('mosquitto');
  const port = await freePort();
  const conf = join(dir.path, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest stdout',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  return managedServer(
    'mosquitto',
    port,
    `mqtt://127.0.0.1:${port}`,
    dir,
    () => startProcess(bin, ['-c', conf]),
    (p) => waitForPort(port, p.child),
  );
}

/** VictoriaMetrics: accepts InfluxDB line protocol on `/write` and `/api/v2/write`. */
export async function startVictoriaMetrics(): Promise<Server> {
  const bin = requireBinary('victoria-metrics', 'victoria-metrics');
  const dir = tempDir('vm');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return managedServer(
    'victoria-metrics',
    port,
    url,
    dir,
    () =>
      startProcess(bin, [
        `-httpListenAddr=127.0.0.1:${port}`,
        `-storageDataPath=${dir.path}/data`,
        '-retentionPeriod=100y',
        '-search.latencyOffset=0s',
        '-loggerLevel=ERROR',
      ]),
    (p) => waitForHttp(`${url}/health`, 200, p.child),
  );
}

/**
 * Prometheus (Debian `prometheus`) with `config` (YAML text; its `rule_files` relative to the temp dir, where
 * `files` are written first), on a free port with its TSDB in the temp dir.
 */
export async function startPrometheus(config: string, files: Record<string, string> = {}): Promise<Server> {
  const bin = requireBinary('prometheus', 'prometheus');
  const dir = tempDir('prometheus');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir.path, name), text);
  writeFileSync(join(dir.path, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return managedServer(
    'prometheus',
    port,
    url,
    dir,
    () =>
      startProcess(bin, [
        `--config.file=${join(dir.path, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir.path, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ]),
    (p) => waitForHttp(`${url}/-/ready`, 200, p.child),
  );
}

/**
 * Alertmanager (Debian `prometheus-alertmanager`) with `config` (YAML text; `files` written beside it), on a
 * free port, clustering off.
 */
export async function startAlertmanager(config: string, files: Record<string, string> = {}): Promise<Server> {
  const bin = requireBinary('prometheus-alertmanager', 'prometheus-alertmanager');
  const dir = tempDir('alertmanager');
  for (const [name, text] of Object.entries(files))
    writeFileSync(join(dir.path, name), text, { mode: 0o600 });
  writeFileSync(join(dir.path, 'alertmanager.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return managedServer(
    'alertmanager',
    port,
    url,
    dir,
    () =>
      startProcess(bin, [
        `--config.file=${join(dir.path, 'alertmanager.yml')}`,
        `--storage.path=${join(dir.path, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ]),
    (p) => waitForHttp(`${url}/-/ready`, 200, p.child),
  );
}
