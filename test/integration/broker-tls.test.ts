/**
 * The embedded broker's device endpoint: no plain MQTT beyond loopback unless allowed, and TLS with the
 * certificate the README's one-line openssl command makes (run as written), spoken to by mosquitto_pub.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { DeviceBroker, isLoopbackHost, plaintextBeyondLoopback } from '../../nodes/lib/broker/broker';
import type { DeviceMessage } from '../../nodes/lib/device-contracts';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { freePort, repoRoot, requireBinary, tempDir } from '../support/servers';

const run = promisify(execFile);

describe('embedded broker: loopback or TLS', () => {
  const dir = tempDir('broker-tls');
  let registry: Registry;
  let token: string;

  before(() => {
    registry = new Registry(
      new FileDeviceStore(join(dir.path, 'registry.json')),
      'tls-test-secret-0123456789abcdef',
    );
    registry.putType({ name: 'sensor' });
    token = registry.createDevice({ id: 'tls-1', type: 'sensor' }).token;
  });

  after(() => {
    registry.close();
    dir.remove();
  });

  it('tells loopback from network addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'example.com', ''])
      assert.equal(isLoopbackHost(h), false, h);
    assert.deepEqual(plaintextBeyondLoopback({ host: '0.0.0.0', port: 1883 }), ['mqtt://0.0.0.0:1883']);
    assert.deepEqual(plaintextBeyondLoopback({ host: '127.0.0.1', port: 1883 }), []);
    const tls = { cert: 'c', key: 'k' };
    assert.deepEqual(plaintextBeyondLoopback({ host: '0.0.0.0', port: 8883, tls }), []);
    assert.deepEqual(
      plaintextBeyondLoopback({
        host: '0.0.0.0',
        port: 8883,
        tls,
        ws: { host: '0.0.0.0', port: 8083, path: '/' },
      }),
      ['ws://0.0.0.0:8083'],
      'the WebSocket listener has no TLS of its own',
    );
  });

  it('refuses to listen without TLS on an address other machines reach, before binding anything', async () => {
    const port = await freePort();
    await assert.rejects(
      DeviceBroker.start({ registry }, { host: '0.0.0.0', port }),
      /refusing to listen without TLS beyond this machine \(mqtt:\/\/0\.0\.0\.0:\d+\): device tokens would cross the network in clear text/,
    );
  });

  it("speaks TLS with the README's test certificate; mosquitto_pub --cafile publishes", async () => {
    requireBinary('mosquitto_pub', 'mosquitto-clients');
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const openssl = /^openssl req .*$/m.exec(readme)?.[0];
    assert.ok(openssl, 'README has the openssl command');
    await run('bash', ['-euo', 'pipefail', '-c', openssl], { cwd: dir.path });
    const port = await freePort();
    const tls = {
      cert: readFileSync(join(dir.path, 'mqtt-cert.pem')),
      key: readFileSync(join(dir.path, 'mqtt-key.pem')),
    };
    const broker = await DeviceBroker.start({ registry }, { host: '127.0.0.1', port, tls });
    try {
      const got = new Promise<DeviceMessage>((resolve) => broker.once('message', resolve));
      await run('mosquitto_pub', [
        ...['-h', '127.0.0.1', '-p', String(port), '--cafile', join(dir.path, 'mqtt-cert.pem')],
        ...['-i', 'tls-1', '-u', 'tls-1', '-P', token, '-q', '1'],
        ...['-t', 'devices/tls-1/telemetry', '-m', '{"temperature":20}'],
      ]);
      const m = await got;
      assert.equal(m.device.id, 'tls-1');
      assert.equal(m.payload.toString(), '{"temperature":20}');
      // Plain MQTT to the TLS port gets no CONNACK.
      await assert.rejects(
        run('mosquitto_pub', [
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-i',
          'tls-1',
          '-u',
          'tls-1',
          '-P',
          token,
          '-t',
          'devices/tls-1/telemetry',
          '-m',
          '{}',
        ]),
      );
    } finally {
      await broker.close();
    }
  });
});
