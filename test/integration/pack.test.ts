/**
 * What users install: `npm pack`, `npm install <tarball>` into an empty Node-RED user dir, and a real
 * node-red loading it from there (not from this checkout). Data-driven from package.json, so every node and
 * flow added to the package is covered.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { repoRoot, tempDir } from '../support/servers';

const run = promisify(execFile);

interface PackageJson {
  name: string;
  version: string;
  files: string[];
  dependencies?: Record<string, string>;
  'node-red': { version: string; nodes: Record<string, string> };
}
interface NodeSet {
  id: string;
  name: string;
  types: string[];
  enabled: boolean;
  /** Installed in the user dir's node_modules. */
  local: boolean;
  module: string;
  version: string;
  err?: string;
}

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
const nodeSets = Object.entries(pkg['node-red'].nodes);
const shippedFlows = readdirSync(join(repoRoot, 'flows'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.replace(/\.json$/, ''));

/** Sources, tests, tooling, source maps and anything that may hold a secret. */
const NOT_FOR_USERS = [
  /^(nodes|test|bench|flows|scripts|\.ci|\.compat|\.node-red)\//,
  /(^|\/)test\//,
  /\.test\./,
  /\.map$/,
  /\.ts$/,
  /\.tsbuildinfo$/,
  /secret|flows_cred|\.env$|\.npmrc$/,
  /^settings\.js$/,
];

describe(`npm pack of ${pkg.name} installed into an empty Node-RED user dir`, () => {
  const dir = tempDir('pack');
  const userDir = join(dir.path, 'user');
  let files: string[];
  let nr: NodeRedProcess | undefined;

  before(async () => {
    // --ignore-scripts: pack what `npm run build` made; other test files read dist/ at the same time.
    const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir.path], {
      cwd: repoRoot,
    });
    const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    files = info.files.map((f) => f.path);

    mkdirSync(userDir);
    writeFileSync(
      join(userDir, 'package.json'),
      JSON.stringify({ name: 'node-red-project', version: '0.0.1', private: true }),
    );
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir.path, info.filename)],
      { cwd: userDir },
    );
    nr = await startNodeRed({ flows: [], userDir, settings: { nodesDir: [] } });
  });
  after(async () => {
    await nr?.stop();
    dir.remove();
  });

  it('contains the built nodes, examples, README and LICENSE and nothing a user does not need', () => {
    for (const file of Object.values(pkg['node-red'].nodes))
      assert.ok(files.includes(file), `${file} missing`);
    for (const flow of shippedFlows)
      assert.ok(files.includes(`examples/${flow}.json`), `examples/${flow}.json`);
    for (const f of ['package.json', 'README.md', 'LICENSE']) assert.ok(files.includes(f), `${f} missing`);
    const unwanted = files.filter((f) => NOT_FOR_USERS.some((re) => re.test(f)));
    assert.deepEqual(unwanted, []);
    assert.ok(!pkg.dependencies?.['node-red'], 'node-red must be a devDependency only');
  });

  it('loads every node listed in package.json, from the installed package, without warnings', async () => {
    const res = await fetch(`${nr!.url}/nodes`, { headers: { accept: 'application/json' } });
    assert.equal(res.status, 200);
    const sets = ((await res.json()) as NodeSet[]).filter((s) => s.module === pkg.name);
    for (const [name] of nodeSets) {
      const set = sets.find((s) => s.name === name);
      assert.ok(set, `node set ${name} not registered`);
      assert.equal(set.err, undefined, `${name}: ${set.err}`);
      assert.ok(set.enabled, `${name} not enabled`);
      assert.ok(set.local, `${name} was not loaded from the user dir`);
      assert.ok(set.types.length > 0, `${name} registers no type`);
      assert.equal(set.version, pkg.version);
    }
    assert.equal(sets.length, nodeSets.length, `unexpected sets: ${sets.map((s) => s.name).join(', ')}`);

    const log = nr!.proc.output();
    assert.match(log, new RegExp(`Loading palette nodes`));
    assert.doesNotMatch(
      log,
      /\[(warn|error)\] \[node-red-contrib-iot-backend|Failed to register|missing types/,
    );
    // Node-RED prints a failed node set as "[warn] [<module>/<set>] <error>"; nothing of ours may warn.
    const warnings = log.split('\n').filter((l) => /\[(warn|error)\]/.test(l) && /iotb|iot-backend/.test(l));
    assert.deepEqual(warnings, []);
  });

  it('serves every node type its editor template and help text', async () => {
    const res = await fetch(`${nr!.url}/nodes`, { headers: { accept: 'text/html' } });
    const html = await res.text();
    const sets = (await (
      await fetch(`${nr!.url}/nodes`, { headers: { accept: 'application/json' } })
    ).json()) as NodeSet[];
    for (const set of sets.filter((s) => s.module === pkg.name)) {
      for (const type of set.types) {
        assert.match(html, new RegExp(`registerType\\(\\s*'${type}'`), `${type}: no editor definition`);
        assert.ok(html.includes(`data-template-name="${type}"`), `${type}: no edit dialog template`);
        assert.ok(html.includes(`data-help-name="${type}"`), `${type}: no help text`);
      }
    }
    const catalog = await fetch(`${nr!.url}/nodes/messages?lng=en-US`);
    const messages = (await catalog.json()) as Record<string, unknown>;
    for (const [name] of nodeSets)
      assert.ok(messages[`${pkg.name}/${name}`], `${name}: no en-US message catalog`);
  });

  it('lists the shipped flows under Import -> Examples', async () => {
    const res = await fetch(`${nr!.url}/library/examples/flows/${pkg.name}`);
    assert.equal(res.status, 200);
    const listing = (await res.json()) as { fn?: string }[];
    assert.deepEqual(listing.map((e) => e.fn).sort(), [...shippedFlows].sort());
    for (const flow of shippedFlows) {
      const one = await fetch(`${nr!.url}/library/examples/flows/${pkg.name}/${flow}`);
      assert.equal(one.status, 200);
      assert.ok(Array.isArray(await one.json()), `${flow} is not a flow`);
    }
  });
});
