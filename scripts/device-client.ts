/**
 * The reference device from the command line.
 *
 *   node --import tsx scripts/device-client.ts --url mqtt://localhost:1883 --id lamp-1 --token <token> \
 *     [--behaviour normal|never-ack|ack-late|fail] [--late-ms 5000] [--interval-ms 10000] [--mqtt5] [--prefix devices]
 *     [--no-twin]
 *
 * It applies its twin's desired state (e.g. `intervalMs`) and reports it back, unless --no-twin.
 * The token can also come from IOTB_DEVICE_TOKEN (keeps it out of the process list). Ctrl-C goes offline politely.
 */
import { parseArgs } from 'node:util';
import { DeviceClient, type DeviceBehaviour } from '../nodes/lib/device-client';

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
device.on('error', (err: Error) => console.error(`[${values.id}] ${err.message}`));
device.on('connect', () => console.log(`[${values.id}] connected to ${values.url} (${values.behaviour})`));
device.on('command', (c: { id: string; name: string; params: unknown }) =>
  console.log(`[${values.id}] command ${c.name} ${JSON.stringify(c.params ?? {})} (id ${c.id})`),
);
device.on('reboot', () => console.log(`[${values.id}] reboot requested`));
device.on('desired', (d: { version: number; state: unknown }) =>
  console.log(`[${values.id}] desired v${d.version} ${JSON.stringify(d.state)}`),
);

process.once('SIGINT', () => {
  device.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
