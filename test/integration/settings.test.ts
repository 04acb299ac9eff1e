/**
 * The repository's settings.js and `npm start` (scripts/start.mjs) in real node-red processes: secure first
 * start, secrets from the environment, and the shipped flow copied into the user dir.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  repoRoot,
  startProcess,
  tempDir,
  waitForOutput,
  type ManagedProcess,
} from '../support/servers';
import { cleanEnv, startScript } from '../support/start-script';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcrypt = require('bcryptjs') as {
  compareSync(s: string, hash: string): boolean;
  hashSync(s: string, rounds: number): string;
};

const redJs = require.resolve('node-red/red.js');
const settingsJs = join(repoRoot, 'settings.js');
const PASSWORD_LINE = /Editor password: (\S+)/;

/** node-red with the repository's settings.js, as `npm start` runs it. */
async function startWithSettings(userDir: string, port: number, env: Record<string, string> = {}) {
  const proc = startProcess(process.execPath, [redJs, '--settings', settingsJs], {
    env: cleanEnv({ IOTB_USER_DIR: userDir, IOTB_PORT: String(port), ...env }),
  });
  try {
    await waitForOutput(proc, /Started flows/, 60_000);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

async function login(url: string, password: string, username = 'admin'): Promise<Response> {
  return fetch(`${url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_id: 'node-red-admin',
      grant_type: 'password',
      scope: '*',
      username,
      password,
    }),
  });
}

async function token(url: string, password: string): Promise<string> {
  const res = await login(url, password);
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { access_token: string }).access_token;
}

function readSecrets(userDir: string): Record<string, string> {
  return JSON.parse(readFileSync(join(userDir, '.iotb-secrets.json'), 'utf8')) as Record<string, string>;
}

function countMatches(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

describe('settings.js: first start and second start', () => {
  const dir = tempDir('settings');
  let port: number;
  let url: string;
  let proc: ManagedProcess;
  let password: string;

  before(async () => {
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    proc = await startWithSettings(dir.path, port);
    password = PASSWORD_LINE.exec(proc.output())?.[1] ?? '';
  });
  after(async () => {
    await proc.stop();
    dir.remove();
  });

  it('prints a generated password once and stores only its bcrypt hash, mode 0600', () => {
    assert.equal(countMatches(proc.output(), PASSWORD_LINE), 1, proc.output());
    assert.ok(password.length >= 24, `password too short: ${password.length} chars`);
    const file = join(dir.path, '.iotb-secrets.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(password), 'the password itself is stored');
    const { adminPasswordHash } = readSecrets(dir.path);
    assert.match(adminPasswordHash, /^\$2[aby]\$12\$/);
    assert.ok(bcrypt.compareSync(password, adminPasswordHash));
    for (const f of readdirSync(dir.path, { recursive: true, withFileTypes: true }))
      if (f.isFile())
        assert.ok(
          !readFileSync(join(f.parentPath, f.name), 'utf8').includes(password),
          `password in ${f.name}`,
        );
  });

  it('generates a credential secret and keeps it 0600 beside the hash', () => {
    const { credentialSecret } = readSecrets(dir.path);
    assert.match(credentialSecret, /^[0-9a-f]{64}$/);
  });

  it('logs in with the printed password and refuses a wrong one', async () => {
    const access = await token(url, password);
    const flows = await fetch(`${url}/flows`, { headers: { authorization: `Bearer ${access}` } });
    assert.equal(flows.status, 200);
    // Node-RED answers a refused password grant with 403.
    const wrong = await login(url, `${password}x`);
    assert.equal(wrong.status, 403);
    assert.ok(!('access_token' in ((await wrong.json()) as object)));
    const otherUser = await login(url, password, 'root');
    assert.equal(otherUser.status, 403);
  });

  it('refuses the admin API without a token', async () => {
    assert.equal((await fetch(`${url}/flows`)).status, 401);
    const deploy = await fetch(`${url}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    assert.equal(deploy.status, 401);
    const bogus = await fetch(`${url}/flows`, { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(bogus.status, 401);
  });

  it('binds the editor to 127.0.0.1 only', async () => {
    assert.match(proc.output(), new RegExp(`Server now running at http://127\\.0\\.0\\.1:${port}/`));
    const external = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    for (const host of external) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect(port, host);
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      });
      assert.ok(refused, `port ${port} answers on ${host}`);
    }
  });

  it('disables installing nodes from the palette, function external modules and telemetry', async () => {
    const access = await token(url, password);
    const auth = { authorization: `Bearer ${access}` };
    const settings: any = await (await fetch(`${url}/settings`, { headers: auth })).json();
    assert.equal(settings.externalModules.palette.allowInstall, false);
    assert.equal(settings.externalModules.palette.allowUpload, false);
    assert.equal(settings.functionExternalModules, false);
    assert.equal(settings.telemetryEnabled, false);
    // With install disabled Node-RED does not even register the install route.
    const install = await fetch(`${url}/nodes`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ module: 'node-red-node-random' }),
    });
    assert.equal(install.status, 404);
    assert.ok(!existsSync(join(dir.path, 'node_modules', 'node-red-node-random')));
  });

  it('prints nothing on the second start and keeps the hash and secret', async () => {
    const before = readFileSync(join(dir.path, '.iotb-secrets.json'), 'utf8');
    await proc.stop();
    proc = await startWithSettings(dir.path, port);
    assert.equal(countMatches(proc.output(), /password/i), 0, proc.output());
    assert.equal(readFileSync(join(dir.path, '.iotb-secrets.json'), 'utf8'), before);
    await token(url, password);
  });
});

describe('settings.js with secrets from the environment', () => {
  const dir = tempDir('settings-env');
  const password = 'env-provided password 42';
  const env = {
    IOTB_HOST: '127.0.0.2', // another loopback address: shows IOTB_HOST is honoured
    IOTB_ADMIN_USER: 'operator',
    IOTB_ADMIN_PASSWORD_HASH: bcrypt.hashSync(password, 10),
    IOTB_CREDENTIAL_SECRET: 'env-provided-credential-secret',
  };
  let port: number;
  let url: string;
  let proc: ManagedProcess | undefined;

  before(async () => {
    port = await freePort();
    url = `http://127.0.0.2:${port}`;
  });
  after(async () => {
    await proc?.stop();
    dir.remove();
  });

  it('uses them, prints no password and stores neither', async () => {
    proc = await startWithSettings(dir.path, port, env);
    assert.match(proc.output(), new RegExp(`Server now running at http://127\\.0\\.0\\.2:${port}/`));
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`), 'listening on 127.0.0.1 despite IOTB_HOST');
    assert.equal(countMatches(proc.output(), /password/i), 0, proc.output());
    assert.ok(!existsSync(join(dir.path, '.iotb-secrets.json')));
    const res = await login(url, password, 'operator');
    assert.equal(res.status, 200);
    assert.equal((await login(url, password, 'admin')).status, 403);
  });

  it('encrypts node credentials with IOTB_CREDENTIAL_SECRET', async () => {
    const res = await login(url, password, 'operator');
    const auth = { authorization: `Bearer ${((await res.json()) as { access_token: string }).access_token}` };
    // A core config node with credentials; it never connects (no node uses it).
    const flows = [
      {
        id: 'cred-holder',
        type: 'mqtt-broker',
        broker: '127.0.0.1',
        port: '1',
        credentials: { user: 'broker-user', password: 'broker-secret-value' },
      },
    ];
    const deploy = await fetch(`${url}/flows`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(deploy.status, 204, await deploy.text());
    const stored = readFileSync(join(dir.path, 'flows_cred.json'), 'utf8');
    assert.ok(!stored.includes('broker-secret-value'));
    assert.ok('$' in JSON.parse(stored), 'flows_cred.json is not encrypted');

    await proc!.stop();
    proc = await startWithSettings(dir.path, port, env);
    const creds = await fetch(`${url}/credentials/mqtt-broker/cred-holder`, { headers: auth });
    assert.deepEqual(await creds.json(), { user: 'broker-user', has_password: true });

    // Another secret cannot read them.
    await proc.stop();
    proc = await startWithSettings(dir.path, port, { ...env, IOTB_CREDENTIAL_SECRET: 'another-secret' });
    assert.match(proc.output(), /Error loading credentials|Failed to decrypt credentials/);
  });

  it('refuses to start with an IOTB_ADMIN_PASSWORD_HASH that is not a bcrypt hash', async () => {
    await proc?.stop();
    proc = undefined;
    const bad = startProcess(process.execPath, [redJs, '--settings', settingsJs], {
      env: cleanEnv({ IOTB_USER_DIR: dir.path, IOTB_PORT: String(port), IOTB_ADMIN_PASSWORD_HASH: 'secret' }),
    });
    try {
      await waitForOutput(bad, /IOTB_ADMIN_PASSWORD_HASH is not a bcrypt hash/);
      await new Promise((resolve) => (bad.closed() ? resolve(null) : bad.child.once('close', resolve)));
      assert.notEqual(bad.child.exitCode, 0);
      assert.ok(!bad.output().includes('secret\n'), 'the value is echoed');
    } finally {
      await bad.stop();
    }
  });
});

describe('settings.js: CORS of the HTTP API (IOTB_API_CORS_ORIGINS), apart from the editor', () => {
  const dir = tempDir('settings-cors');
  let proc: ManagedProcess | undefined;
  after(async () => {
    await proc?.stop();
    dir.remove();
  });

  /** GET /api/ping (a route of the flow) and the editor's /auth/login, each from `origin`. */
  async function allowedOrigins(
    port: number,
    origin: string,
  ): Promise<{ api: string | null; editor: string | null }> {
    const url = `http://127.0.0.1:${port}`;
    const api = await fetch(`${url}/api/ping`, { headers: { origin }, signal: AbortSignal.timeout(5000) });
    assert.equal(api.status, 200);
    const editor = await fetch(`${url}/auth/login`, {
      headers: { origin },
      signal: AbortSignal.timeout(5000),
    });
    return {
      api: api.headers.get('access-control-allow-origin'),
      editor: editor.headers.get('access-control-allow-origin'),
    };
  }

  it('no CORS on /api by default; the configured origins only when set; the editor keeps its own', async () => {
    const flow = [
      { id: 'cors-tab', type: 'tab', label: 'cors' },
      {
        id: 'cors-in',
        z: 'cors-tab',
        type: 'http in',
        url: '/api/ping',
        method: 'get',
        wires: [['cors-out']],
      },
      { id: 'cors-out', z: 'cors-tab', type: 'http response', statusCode: '200', wires: [] },
    ];
    writeFileSync(join(dir.path, 'flows.json'), JSON.stringify(flow));
    const port = await freePort();
    proc = await startWithSettings(dir.path, port);
    assert.deepEqual(await allowedOrigins(port, 'https://ops.example.com'), { api: null, editor: '*' });
    await proc.stop();

    proc = await startWithSettings(dir.path, port, {
      IOTB_API_CORS_ORIGINS: 'https://ops.example.com, http://127.0.0.1:3000',
    });
    assert.deepEqual(await allowedOrigins(port, 'https://ops.example.com'), {
      api: 'https://ops.example.com',
      editor: '*',
    });
    assert.equal((await allowedOrigins(port, 'https://elsewhere.example')).api, null);
  });
});

describe('npm start (scripts/start.mjs)', () => {
  const dir = tempDir('npm-start');
  const shipped = join(repoRoot, 'flows', 'backend.json');
  const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
  let proc: ManagedProcess | undefined;

  after(async () => {
    await proc?.stop();
    dir.remove();
  });

  it('copies flows/backend.json into the user dir on first start and never writes to flows/', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const shippedBefore = sha(shipped);
    proc = await startScript(dir.path, port);
    assert.match(proc.output(), /Copied flows\/backend\.json, flows\/dashboard\.json to/);
    const userFlows = join(dir.path, 'flows.json');
    const dashboard = join(repoRoot, 'flows', 'dashboard.json');
    assert.deepEqual(JSON.parse(readFileSync(userFlows, 'utf8')), [
      ...(JSON.parse(readFileSync(shipped, 'utf8')) as unknown[]),
      ...(JSON.parse(readFileSync(dashboard, 'utf8')) as unknown[]),
    ]);

    // The editor deploys into the user dir's copy.
    const password = PASSWORD_LINE.exec(proc.output())?.[1] ?? '';
    const auth = { authorization: `Bearer ${await token(url, password)}` };
    const edited = [{ id: 'edited-tab', type: 'tab', label: 'edited by an operator' }];
    const deploy = await fetch(`${url}/flows`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(edited),
    });
    assert.equal(deploy.status, 204);
    assert.deepEqual(JSON.parse(readFileSync(userFlows, 'utf8')), edited);
    assert.equal(sha(shipped), shippedBefore);

    // A second start keeps the operator's flow.
    await proc.stop();
    proc = await startScript(dir.path, port);
    assert.doesNotMatch(proc.output(), /Copied flows/);
    assert.deepEqual(JSON.parse(readFileSync(userFlows, 'utf8')), edited);
    assert.equal(sha(shipped), shippedBefore);
  });
});
