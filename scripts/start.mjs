// `npm start`: Node-RED 4.x from devDependencies with settings.js. On first start the shipped backend flow
// is copied into the user dir, so the editor never writes to the file in flows/, and an operator API key is
// created in the device registry and printed once (only its keyed hash is stored).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const userDir = resolve(process.env.IOTB_USER_DIR || join(root, '.node-red'));
mkdirSync(userDir, { recursive: true, mode: 0o700 });

const require = createRequire(import.meta.url);
const { writeFileAtomicSync } = require('../dist/nodes/lib/atomic-file.js');
const flowFile = join(userDir, 'flows.json');
if (!existsSync(flowFile)) {
  // The backend and its dashboard (GET /dashboard): separate tabs with their own fixed ids.
  const flows = ['backend.json', 'dashboard.json'].flatMap((f) =>
    JSON.parse(readFileSync(join(root, 'flows', f), 'utf8')),
  );
  // The key first: should that fail, the next start is still a first start.
  printFirstApiKey();
  writeFileAtomicSync(flowFile, JSON.stringify(flows, null, 2));
  console.log(`Copied flows/backend.json and flows/dashboard.json to ${flowFile}`);
}

/**
 * Opens the registry the shipped flow uses (its state file and generated secret, exactly as the iotb-registry
 * node does without a secret credential) before Node-RED starts, so there is one writer at a time.
 */
function printFirstApiKey() {
  const { Registry } = require('../dist/nodes/lib/registry/registry.js');
  const { FileDeviceStore } = require('../dist/nodes/lib/registry/file-store.js');
  const { generateRegistrySecret } = require('../dist/nodes/lib/registry/credentials.js');
  const file = join(userDir, 'iotb-registry.json');
  const secretFile = `${file}.secret`;
  if (!existsSync(secretFile)) writeFileAtomicSync(secretFile, generateRegistrySecret(), 0o600);
  const registry = new Registry(new FileDeviceStore(file), readFileSync(secretFile, 'utf8').trim());
  try {
    const { key } = registry.createApiKey('first-run');
    console.log(
      [
        '',
        '*** Operator API key (shown once; only its hash is stored):',
        `***   ${key}`,
        '*** Call the HTTP API with the header  Authorization: Bearer <key>',
        "*** More keys: iotb-provision (createApiKey) or the registry node's operator key credential.",
        '',
      ].join('\n'),
    );
  } finally {
    registry.close();
  }
}

const redMain = require.resolve('node-red/red.js');
const child = spawn(process.execPath, [redMain, '--settings', join(root, 'settings.js')], {
  stdio: 'inherit',
  env: {
    // Defaults for the shipped backend flow's ${...} settings: Node-RED leaves an unset variable's
    // placeholder in place, so each one needs a value.
    IOTB_MQTT_HOST: '0.0.0.0',
    IOTB_MQTT_PORT: '1883',
    IOTB_INFLUX_URL: 'http://127.0.0.1:8086',
    IOTB_INFLUX_DB: 'iot',
    ...process.env,
    IOTB_USER_DIR: userDir,
  },
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
