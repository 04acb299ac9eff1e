import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeviceClient, type ReceivedCommand } from '../../nodes/lib/device-client';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { shippedFlow } from '../support/backend';
import { startMosquitto, type Server } from '../support/servers';

const SECRET = 'flows-test-registry-secret-0123456789abcd';

const flow = shippedFlow('commands.json');

describe('flows/commands.json in a real node-red process', () => {
  let broker: Server;
  let nr: NodeRedProcess;
  let device: DeviceClient;

  before(async () => {
    broker = await startMosquitto();
    // The example talks to a broker on 127.0.0.1:1883; the test's Mosquitto listens on a free port.
    nr = await startNodeRed({
      flows: flow.map((n) => (n.url === 'mqtt://127.0.0.1:1883' ? { ...n, url: broker.url } : n)),
      prepareUserDir: (userDir) => {
        const file = join(userDir, 'iotb-registry.json');
        const reg = new Registry(new FileDeviceStore(file), SECRET);
        reg.putType({ name: 'lamp', commands: { led: {}, reboot: {} } });
        reg.createDevice({ id: 'lamp-1', type: 'lamp' });
        reg.close();
        writeFileSync(`${file}.secret`, SECRET, { mode: 0o600 });
      },
    });
    device = new DeviceClient({ url: broker.url, deviceId: 'lamp-1', token: 'x' });
    await device.ready();
  });
  after(async () => {
    await device?.stop();
    await nr?.stop();
    await broker?.stop();
  });

  const inject = async (name: string): Promise<void> => {
    const node = flow.find((n) => n.type === 'inject' && n.name === name)!;
    const res = await fetch(`${nr.url}/inject/${node.id}`, { method: 'POST' });
    assert.equal(res.status, 200);
  };

  it('"LED on" reaches the device with the schema-checked params and the device runs it', async () => {
    const executed = once(device, 'executed') as Promise<[ReceivedCommand]>;
    await inject('LED on');
    const [cmd] = await executed;
    assert.equal(cmd.name, 'led');
    assert.deepEqual(cmd.params, { on: true, color: 'green' });
    assert.deepEqual(device.led, { on: true, color: 'green' });
  });

  it('"kill switch on" stops commands until "kill switch off"', async () => {
    const received: string[] = [];
    device.on('command', (c) => received.push(c.name));
    await inject('kill switch on');
    await inject('reboot'); // refused by the kill switch
    await inject('kill switch off');
    const executed = once(device, 'executed') as Promise<[ReceivedCommand]>;
    await inject('LED on');
    await executed;
    assert.deepEqual(received, ['led'], 'the reboot sent under the kill switch never reached the device');
  });
});
