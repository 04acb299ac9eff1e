/**
 * A local InfluxDB 1.x server (`influxd` of the Debian `influxdb` package) with a config file of its own and
 * loopback ports of its own. `npm start` runs one with its data under the Node-RED user dir when no
 * IOTB_INFLUX_URL is given; the tests run one per temp dir. No Node-RED here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { writeFileAtomicSync } from './atomic-file';
import { processAlive } from './process-alive';

/** The command that installs influxd (and the other runtime packages) on Debian. */
export const INFLUXD_INSTALL_COMMAND = 'sudo scripts/install-debian-deps.sh --runtime';

/** Where `bin` is on PATH or in the sbin directories (not always on a user's PATH); undefined if nowhere. */
export function findBinary(
  bin: string,
  path = process.env.PATH ?? '',
  dirs = ['/usr/local/sbin', '/usr/sbin'],
): string | undefined {
  for (const dir of [...path.split(delimiter).filter(Boolean), ...dirs]) {
    const p = join(dir, bin);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** A TCP port of 127.0.0.1 nobody listens on right now. */
export async function freeLoopbackPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  srv.close();
  await once(srv, 'close');
  if (addr === null || typeof addr === 'string') throw new Error('no free port on 127.0.0.1');
  return addr.port;
}

/** True when `port` of 127.0.0.1 can be bound now. */
export async function loopbackPortFree(port: number): Promise<boolean> {
  const srv = createServer();
  srv.listen(port, '127.0.0.1');
  try {
    await Promise.race([
      once(srv, 'listening'),
      once(srv, 'error').then(([err]) => Promise.reject(err as Error)),
    ]);
  } catch {
    return false;
  }
  srv.close();
  await once(srv, 'close');
  return true;
}

export interface InfluxdPorts {
  /** HTTP API (what the backend writes to and queries). */
  http: number;
  /** influxd's backup/restore RPC listener (8088 by default: moved so that it does not clash either). */
  rpc: number;
}

/** influxd.conf: data under `dir`, both listeners on loopback, no phoning home, quiet logs. */
export function influxdConfig(
  dir: string,
  ports: InfluxdPorts,
  opts: { authEnabled?: boolean } = {},
): string {
  return `reporting-disabled = true
bind-address = "127.0.0.1:${ports.rpc}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${ports.http}"
  auth-enabled = ${opts.authEnabled ? 'true' : 'false'}
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
  suppress-logo = true
`;
}

/** Resolves once `url` answers /ping with 204; rejects when `child` exits first or after `timeoutMs`. */
export async function waitForInfluxd(url: string, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `influxd exited (${String(child.exitCode ?? child.signalCode)}) before ${url} answered`,
      );
    const status = await fetch(`${url}/ping`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 204) return;
    if (Date.now() > deadline) throw new Error(`influxd at ${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100)); // nothing signals "listening" but the port itself
  }
}

/** CREATE DATABASE (a no-op when it exists). */
export async function createDatabase(url: string, database: string): Promise<void> {
  const q = new URLSearchParams({ q: `CREATE DATABASE "${database.replace(/["\\]/g, '\\$&')}"` });
  const res = await fetch(`${url}/query`, { method: 'POST', body: q });
  if (res.status !== 200)
    throw new Error(`influxd: CREATE DATABASE ${database} answered ${res.status}: ${await res.text()}`);
}

export interface LocalInfluxd {
  url: string;
  pid: number;
  dir: string;
  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. Safe to call more than once. */
  stop(graceMs?: number): Promise<void>;
  /** SIGTERM without waiting: for a process that is exiting right now. */
  signalStop(): void;
}

interface State {
  ports: InfluxdPorts;
  pid?: number;
}

/**
 * Starts influxd with its data, config, log and state in `dir` and creates `database`. The ports of the last run
 * are used again when they are still free (a stable URL across restarts), else new free ones. An influxd left
 * over from a start that was killed (its pid in the state file, its command line naming this config) is stopped
 * first, so that it neither holds the data nor lives on as an orphan.
 */
export async function startLocalInfluxd(opts: {
  bin: string;
  dir: string;
  database: string;
  timeoutMs?: number;
}): Promise<LocalInfluxd> {
  const { bin, dir } = opts;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const conf = join(dir, 'influxdb.conf');
  const stateFile = join(dir, 'influxd-state.json');
  const previous = readState(stateFile);
  if (previous?.pid !== undefined) await stopLeftover(previous.pid, conf);
  const ports = await choosePorts(previous?.ports);
  writeFileSync(conf, influxdConfig(dir, ports), { mode: 0o600 });
  const log = openSync(join(dir, 'influxd.log'), 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(bin, ['-config', conf], { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${ports.http}`;
  const pid = child.pid ?? 0;
  writeFileAtomicSync(stateFile, JSON.stringify({ ports, pid } satisfies State));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const server: LocalInfluxd = {
    url,
    pid,
    dir,
    signalStop() {
      if (running()) child.kill('SIGTERM');
    },
    async stop(graceMs = 10_000) {
      if (running()) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      writeFileAtomicSync(stateFile, JSON.stringify({ ports } satisfies State));
    },
  };
  try {
    await waitForInfluxd(url, child, opts.timeoutMs);
    await createDatabase(url, opts.database);
  } catch (err) {
    await server.stop();
    const tail = readFileSync(join(dir, 'influxd.log'), 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`${(err as Error).message}\n--- ${join(dir, 'influxd.log')} (last lines) ---\n${tail}`);
  }
  return server;
}

function readState(file: string): State | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as State;
  } catch {
    return undefined; // first start, or a state file cut short: choose anew
  }
}

async function choosePorts(previous: InfluxdPorts | undefined): Promise<InfluxdPorts> {
  if (previous && (await loopbackPortFree(previous.http)) && (await loopbackPortFree(previous.rpc)))
    return previous;
  const http = await freeLoopbackPort();
  let rpc = await freeLoopbackPort();
  while (rpc === http) rpc = await freeLoopbackPort();
  return { http, rpc };
}

/** Stops the influxd of an earlier run that is still alive (only if its command line names `conf`). */
async function stopLeftover(pid: number, conf: string): Promise<void> {
  if (!processAlive(pid)) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // no /proc: leave whatever it is alone
  }
  if (!cmdline.includes(conf)) return; // the pid was reused by another process
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}
