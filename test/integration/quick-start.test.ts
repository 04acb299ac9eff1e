/**
 * `npm start` as a new user meets it: a clean user dir and no InfluxDB given, so scripts/start.mjs starts its own
 * influxd. The README's quick-start commands run exactly as written (parsed from README.md; only their
 * `${IOTB_PORT:-…}` defaults take this test's free ports from the environment): provision a device, publish a
 * reading with mosquitto_pub, read it back through the HTTP API. Then: influxd stops with Node-RED, a restart
 * finds the reading again, and IOTB_DEMO=1 brings simulated sensors whose readings arrive.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { processAlive } from '../../nodes/lib/process-alive';
import { quickStartCommands } from '../../nodes/lib/quick-start';
import { apiClient } from '../support/backend';
import { cleanEnv, startScript } from '../support/start-script';
import {
  eventually,
  freePort,
  repoRoot,
  requireBinary,
  startProcess,
  tempDir,
  waitForOutput,
  type ManagedProcess,
} from '../support/servers';

const run = promisify(execFile);
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

interface Telemetry {
  readings?: { temperature?: number; humidity?: number; led?: boolean }[];
}

describe('npm start on a clean user dir: the README quick start', () => {
  const dir = tempDir('quick-start');
  let proc: ManagedProcess | undefined;
  let env: Record<string, string>;
  let key: string;
  let influxdPid: number;
  let influxUrl: string;

  after(async () => {
    await proc?.stop();
    dir.remove();
  });

  it('starts its own influxd and prints the summary with the operator key', async () => {
    requireBinary('mosquitto_pub', 'mosquitto-clients');
    env = { IOTB_PORT: String(await freePort()), IOTB_MQTT_PORT: String(await freePort()) };
    proc = await startScript(dir.path, Number(env.IOTB_PORT), env);
    const out = proc.output();
    const influxd = /InfluxDB 1\.x \(local influxd, pid (\d+)\) on (\S+), data in (\S+)/.exec(out);
    assert.ok(influxd, out);
    influxdPid = Number(influxd[1]);
    influxUrl = influxd[2]!;
    assert.equal(influxd[3], join(dir.path, 'influxdb'));
    assert.ok(
      readFileSync(`/proc/${influxdPid}/cmdline`, 'utf8').includes(
        join(dir.path, 'influxdb', 'influxdb.conf'),
      ),
    );
    assert.match(out, new RegExp(`MQTT: +mqtt://127\\.0\\.0\\.1:${env.IOTB_MQTT_PORT} `));
    assert.match(out, new RegExp(`Dashboard: +http://127\\.0\\.0\\.1:${env.IOTB_PORT}/dashboard`));
    key = /^ {3}KEY=(\S+)$/m.exec(out)?.[1] ?? '';
    assert.match(key, /^iotbk_/);
    assert.equal(/Operator API key[^\n]*\n\*\*\*\s+(\S+)/.exec(out)?.[1], key);
  });

  it("runs the README's commands: provision, mosquitto_pub, and the reading comes back", async () => {
    const commands = quickStartCommands(readme);
    assert.ok(commands.length >= 3, 'provision, publish, read back');
    assert.ok(commands.some((c) => c.startsWith('mosquitto_pub ')));
    const shellEnv = cleanEnv({ ...env, KEY: key });
    const read = commands.at(-1)!;
    // All but the read-back in one shell (TOKEN carries over), stopping at the first failure.
    await run('bash', ['-euo', 'pipefail', '-c', commands.slice(0, -1).join('\n')], { env: shellEnv });
    // The read-back as written; again if the writer has not flushed yet (it does every second).
    const body = await eventually('the reading from GET /api/devices/sensor-1/telemetry', async () => {
      const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', read], { env: shellEnv });
      const parsed = JSON.parse(stdout) as Telemetry;
      return parsed.readings?.length ? parsed : undefined;
    });
    assert.deepEqual(
      body.readings?.map((r) => [r.temperature, r.humidity, r.led]),
      [[21.5, 40, false]],
    );
  });

  it('stops its influxd when Node-RED stops', async () => {
    await proc!.stop();
    await eventually('influxd to exit', () => (processAlive(influxdPid) ? undefined : true), 15_000);
  });

  it('restarts on the same data and port; IOTB_DEMO=1 adds simulated sensors whose readings arrive', async () => {
    proc = await startScript(dir.path, Number(env.IOTB_PORT), { ...env, IOTB_DEMO: '1' });
    const out = proc.output();
    assert.match(out, /IOTB_DEMO=1: added the simulator tab/);
    assert.doesNotMatch(out, /Operator API key/, 'the key is shown on the first start only');
    assert.equal(/InfluxDB 1\.x \(local influxd, pid \d+\) on (\S+),/.exec(out)?.[1], influxUrl);
    const api = apiClient(`http://127.0.0.1:${env.IOTB_PORT}`, key);
    const kept = await api('GET', '/api/devices/sensor-1/telemetry');
    assert.equal(kept.status, 200);
    assert.equal((kept.body as Telemetry).readings?.[0]?.temperature, 21.5);
    await eventually(
      'a reading of the simulated sensor sim-1',
      async () => {
        const r = await api('GET', '/api/devices/sim-1/telemetry');
        return r.status === 200 && (r.body as Telemetry).readings?.length ? true : undefined;
      },
      60_000,
    );
  });
});

describe('npm start without influxd installed', () => {
  it('stops with the command that installs it', async () => {
    const dir = tempDir('no-influxd');
    try {
      const proc = startProcess(process.execPath, [join(repoRoot, 'scripts', 'start.mjs')], {
        env: cleanEnv({ IOTB_USER_DIR: dir.path, PATH: dir.path }),
      });
      const [code] = (await once(proc.child, 'exit')) as [number | null];
      assert.equal(code, 1);
      await waitForOutput(proc, /influxd \(InfluxDB 1\.x\) is not installed/);
      assert.match(proc.output(), /sudo scripts\/install-debian-deps\.sh --runtime/);
      assert.equal(existsSync(join(dir.path, 'flows.json')), false, 'the next start is still a first start');
    } finally {
      dir.remove();
    }
  });
});
