// `npm start`: the complete backend from a checkout. Node-RED 4.x from devDependencies with settings.js; on the
// first start the shipped backend flow is copied into the user dir (the editor never writes to flows/) and an
// operator API key is created and printed once (only its keyed hash is stored). Without IOTB_INFLUX_URL a local
// influxd runs with its data under the user dir and stops with Node-RED. Once the editor answers, one summary
// says where everything is and how to send a first reading (the README's quick-start commands).
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
const {
  INFLUXD_INSTALL_COMMAND,
  findBinary,
  startLocalInfluxd,
} = require('../dist/nodes/lib/local-influxd.js');
const { quickStartExample } = require('../dist/nodes/lib/quick-start.js');

// Defaults for the shipped flows' ${...} settings: Node-RED leaves an unset variable's placeholder in place, so
// each one needs a value. The broker listens on loopback unless told otherwise (and then needs TLS).
const env = {
  IOTB_MQTT_HOST: '127.0.0.1',
  IOTB_MQTT_PORT: '1883',
  IOTB_MQTT_TLS_CERT: '',
  IOTB_MQTT_TLS_KEY: '',
  IOTB_INFLUX_DB: 'iot',
  IOTB_PRESENCE_TIMEOUT_S: '120',
  ...process.env,
  IOTB_USER_DIR: userDir,
};

let influxd;
if (!env.IOTB_INFLUX_URL) {
  const bin = findBinary('influxd');
  if (!bin) {
    console.error(
      [
        'influxd (InfluxDB 1.x) is not installed. Install it with',
        `  ${INFLUXD_INSTALL_COMMAND}`,
        '(Debian package influxdb), or set IOTB_INFLUX_URL to an InfluxDB 1.x you run yourself.',
      ].join('\n'),
    );
    process.exit(1);
  }
  try {
    influxd = await startLocalInfluxd({ bin, dir: join(userDir, 'influxdb'), database: env.IOTB_INFLUX_DB });
  } catch (err) {
    console.error(`Local InfluxDB did not start: ${err.message}`);
    process.exit(1);
  }
  // Whatever ends this process from here on, the influxd it started goes with it.
  process.on('exit', () => influxd.signalStop());
  env.IOTB_INFLUX_URL = influxd.url;
  console.log(`InfluxDB 1.x (local influxd, pid ${influxd.pid}) on ${influxd.url}, data in ${influxd.dir}`);
}

const demo = process.env.IOTB_DEMO === '1';
const flowFile = join(userDir, 'flows.json');
const SIMULATOR_TAB = '5100000000000001';
const shipped = (f) => JSON.parse(readFileSync(join(root, 'flows', f), 'utf8'));

let operatorKey;
if (!existsSync(flowFile)) {
  // The backend and its dashboard (GET /dashboard), and with IOTB_DEMO=1 the simulator: tabs with fixed ids.
  const files = ['backend.json', 'dashboard.json', ...(demo ? ['simulator.json'] : [])];
  // The key first: should that fail, the next start is still a first start.
  operatorKey = createFirstApiKey();
  writeFileAtomicSync(flowFile, JSON.stringify(files.flatMap(shipped), null, 2));
  console.log(`Copied ${files.map((f) => `flows/${f}`).join(', ')} to ${flowFile}`);
} else if (demo) {
  const flows = JSON.parse(readFileSync(flowFile, 'utf8'));
  if (!flows.some((n) => n.id === SIMULATOR_TAB)) {
    writeFileAtomicSync(flowFile, JSON.stringify([...flows, ...shipped('simulator.json')], null, 2));
    console.log(`IOTB_DEMO=1: added the simulator tab (flows/simulator.json) to ${flowFile}`);
  }
}

/**
 * Opens the registry the shipped flow uses (its state file and generated secret, exactly as the iotb-registry
 * node does without a secret credential) before Node-RED starts, so there is one writer at a time.
 */
function createFirstApiKey() {
  const { Registry } = require('../dist/nodes/lib/registry/registry.js');
  const { FileDeviceStore } = require('../dist/nodes/lib/registry/file-store.js');
  const { generateRegistrySecret } = require('../dist/nodes/lib/registry/credentials.js');
  const file = join(userDir, 'iotb-registry.json');
  const secretFile = `${file}.secret`;
  if (!existsSync(secretFile)) writeFileAtomicSync(secretFile, generateRegistrySecret(), 0o600);
  const registry = new Registry(new FileDeviceStore(file), readFileSync(secretFile, 'utf8').trim());
  try {
    return registry.createApiKey('first-run').key;
  } finally {
    registry.close();
  }
}

const redMain = require.resolve('node-red/red.js');
const child = spawn(process.execPath, [redMain, '--settings', join(root, 'settings.js')], {
  stdio: 'inherit',
  env,
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
let summaryPrinted = false;
child.on('exit', (code, signal) => {
  const status = code ?? (signal ? 1 : 0);
  // A key created for this user dir is shown once: if the summary never came, here.
  if (operatorKey && !summaryPrinted)
    console.log(`Operator API key of ${userDir} (shown once): ${operatorKey}`);
  if (!influxd) process.exit(status);
  influxd.stop().finally(() => process.exit(status));
});

printSummaryWhenUp().catch((err) => console.error(`start summary: ${err.message}`));

async function printSummaryWhenUp() {
  const host = !env.IOTB_HOST || env.IOTB_HOST === '0.0.0.0' ? '127.0.0.1' : env.IOTB_HOST;
  const port = env.IOTB_PORT || env.PORT || '1880';
  const editor = `http://${host}:${port}`;
  const answers = () =>
    fetch(editor).then(
      () => true,
      () => false,
    );
  // Node-RED opens its port once the runtime has started; nothing else tells this process.
  while (child.exitCode === null && child.signalCode === null && !(await answers()))
    await new Promise((r) => setTimeout(r, 250));
  if (child.exitCode !== null || child.signalCode !== null) return;
  const tls = Boolean(env.IOTB_MQTT_TLS_CERT);
  const mqttHost = env.IOTB_MQTT_HOST === '0.0.0.0' ? '127.0.0.1' : env.IOTB_MQTT_HOST;
  let example;
  try {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    example = quickStartExample(readme, { IOTB_PORT: port, IOTB_MQTT_PORT: env.IOTB_MQTT_PORT }).split('\n');
  } catch (err) {
    example = [`(the README's quick start: ${err.message})`]; // the rest of the summary still matters
  }
  const lines = [
    '',
    '================ node-red-contrib-iot-backend is running ================',
    ` Editor:     ${editor}  (user ${env.IOTB_ADMIN_USER || 'admin'}; the password was printed at the first start)`,
    ` Dashboard:  ${editor}/dashboard`,
    ` HTTP API:   ${editor}/api  (header Authorization: Bearer <operator key>; docs/backend.md)`,
    ` MQTT:       ${tls ? 'mqtts' : 'mqtt'}://${mqttHost}:${env.IOTB_MQTT_PORT}  (client id = username = device id,` +
      ' password = device token; publish to devices/<id>/telemetry)',
    ` InfluxDB:   ${env.IOTB_INFLUX_URL}  database ${env.IOTB_INFLUX_DB}${influxd ? ` (local influxd, data in ${influxd.dir})` : ''}`,
    ` Data:       ${userDir}  (flows, encrypted credentials, device registry, spools)`,
    ...(demo
      ? [' Demo:       IOTB_DEMO=1: 5 simulated sensors (sim-1 … sim-5) send a reading every 5 s']
      : []),
  ];
  if (operatorKey)
    lines.push(
      '',
      '*** Operator API key (shown once; only its hash is stored):',
      `***   ${operatorKey}`,
      "*** More keys: iotb-provision (createApiKey) or the registry node's operator key credential.",
    );
  lines.push(
    '',
    ' Try it: provision a device, publish a reading with mosquitto_pub, read it back' +
      (tls ? ' (add --cafile <CA or certificate> to mosquitto_pub)' : ''),
    `   KEY=${operatorKey ?? '<your operator key>'}`,
    ...example.map((l) => `   ${l}`),
    '================================ ready ================================',
    '',
  );
  console.log(lines.join('\n'));
  summaryPrinted = true;
}
