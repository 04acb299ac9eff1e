/**
 * The reference device from the command line.
 *
 *   node --import tsx scripts/device-client.ts --url mqtt://localhost:1883 --id lamp-1 --token <token> \
 *     [--behaviour normal|never-ack|ack-late|fail] [--late-ms 5000] [--interval-ms 10000] [--mqtt5] [--prefix devices]
 *     [--no-twin] [--type sensor --firmware-key key.pem [--http-url http://host:1880] [--firmware-version 1.0.0]
 *     [--firmware normal|fail|hang]]
 *
 * It applies its twin's desired state (e.g. `intervalMs`) and reports it back, unless --no-twin.
 * The token can also come from IOTB_DEVICE_TOKEN (keeps it out of the process list). Ctrl-C goes offline politely.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DeviceClient, type DeviceBehaviour } from '../nodes/lib/device-client';
import { attachFirmwareUpdater, type InstallBehaviour } from '../nodes/lib/firmware/device-updater';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    id: { type: 'string' },
    token: { type: 'string' },
    behaviour: { type: 'string', default: 'normal' },
    'late-ms': { type: 'string', default: '5000' },
    'interval-ms': { type: 'string', default: '10000' },
    prefix: { type: 'string', default: 'devices' },
    mqtt5: { type: 'boolean', default: false },
    'no-twin': { type: 'boolean', default: false },
    // Firmware updates (docs/firmware.md): on when --firmware-key names the backend's public key file.
    type: { type: 'string' },
    'http-url': { type: 'string', default: 'http://127.0.0.1:1880' },
    'firmware-key': { type: 'string' },
    'firmware-version': { type: 'string', default: '1.0.0' },
    firmware: { type: 'string', default: 'normal' },
  },
});

const token = values.token ?? process.env.IOTB_DEVICE_TOKEN;
const behaviours = ['normal', 'never-ack', 'ack-late', 'fail'];
if (!values.id || !token || !behaviours.includes(values.behaviour)) {
  console.error(
    'usage: device-client --id <deviceId> --token <token> [--url mqtt://host:1883] ' +
      `[--behaviour ${behaviours.join('|')}] [--late-ms n] [--interval-ms n] [--mqtt5] [--prefix devices] [--no-twin]`,
  );
  process.exit(2);
}

const device = new DeviceClient({
  url: values.url,
  deviceId: values.id,
  token,
  prefix: values.prefix,
  protocol: values.mqtt5 ? 5 : 4,
  behaviour: values.behaviour as DeviceBehaviour,
  lateMs: Number(values['late-ms']),
  telemetryIntervalMs: Number(values['interval-ms']),
  twin: !values['no-twin'],
});
device.on('error', (err) => console.error(`[${values.id}] ${err.message}`));
device.on('connect', () => console.log(`[${values.id}] connected to ${values.url} (${values.behaviour})`));
device.on('command', (c) =>
  console.log(`[${values.id}] command ${c.name} ${JSON.stringify(c.params ?? {})} (id ${c.id})`),
);
device.on('reboot', () => console.log(`[${values.id}] reboot requested`));
device.on('desired', (d) => console.log(`[${values.id}] desired v${d.version} ${JSON.stringify(d.state)}`));

if (values['firmware-key']) {
  if (!values.type || !['normal', 'fail', 'hang'].includes(values.firmware) || values['no-twin']) {
    console.error(
      'firmware updates need --type <device type>, the twin (no --no-twin) and --firmware normal|fail|hang',
    );
    process.exit(2);
  }
  const updater = attachFirmwareUpdater(
    device,
    {
      baseUrl: values['http-url'],
      token,
      deviceType: values.type,
      publicKey: readFileSync(values['firmware-key'], 'utf8'),
      version: values['firmware-version'],
      behaviour: values.firmware as InstallBehaviour,
    },
    (err) => console.error(`[${values.id}] firmware: ${(err as Error).message}`),
  );
  updater.on('downloaded', (d: { bytes: number; requests: number }) =>
    console.log(`[${values.id}] firmware downloaded: ${d.bytes} bytes in ${d.requests} requests`),
  );
  updater.on('refused', (reason: string) => console.error(`[${values.id}] firmware refused: ${reason}`));
}

process.once('SIGINT', () => {
  device.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
