/**
 * `MqttDeviceLink` against a real broker that speaks MQTT 3.1.1 only: a plain aedes server, which answers an MQTT 5
 * CONNECT with CONNACK return code 1 (unacceptable protocol version). Protocol 'auto' must fall back to 3.1.1 and
 * carry commands and acks; protocol 5 forced must fail with a clear error instead of hanging.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server as NetServer } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Aedes, Client } from 'aedes';
import type { IPublishPacket } from 'mqtt';
import { MqttDeviceLink } from '../../nodes/lib/commands/mqtt-link';
import type { DeviceMessage } from '../../nodes/lib/device-contracts';
import { DeviceClient } from '../../nodes/lib/device-client';
import { online } from '../support/commands';
import { freePort } from '../support/servers';

describe('MqttDeviceLink against an MQTT 3.1.1-only broker (aedes)', () => {
  let aedes: Aedes;
  let server: NetServer;
  let url: string;
  /** MQTT version of every CONNECT the broker accepted, and every connection it refused, by client id. */
  const accepted: { id: string; version: number }[] = [];
  const refused: string[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    const { Aedes } = await import('aedes');
    aedes = await Aedes.createBroker({});
    aedes.on('clientReady', (c: Client) => accepted.push({ id: c.id, version: c.version }));
    aedes.on('connectionError', (_c: Client, err: Error) => refused.push(err.message));
    server = createServer(aedes.handle);
    server.listen(await freePort(), '127.0.0.1');
    await once(server, 'listening');
    const addr = server.address();
    assert.ok(addr && typeof addr === 'object');
    url = `mqtt://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    server.close();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function link(clientId: string, protocol: 5 | 'auto'): MqttDeviceLink {
    const l = new MqttDeviceLink({ url, clientId, protocol });
    cleanups.push(() => l.end());
    return l;
  }

  it("'auto' falls back to 3.1.1; a command reaches a 3.1.1 device with its id and the ack comes back", async () => {
    const backend = link(`fallback-${process.pid}`, 'auto');
    await backend.ready();
    assert.equal(backend.connected, true);
    assert.equal(backend.protocol, 4);
    assert.deepEqual(refused, ['unacceptable protocol version'], 'the MQTT 5 CONNECT was refused first');
    assert.deepEqual(
      accepted.filter((a) => a.id === `fallback-${process.pid}`),
      [{ id: `fallback-${process.pid}`, version: 4 }],
    );

    const dev = new DeviceClient({ url, deviceId: 'fb-dev', token: 'unused-by-plain-aedes', protocol: 4 });
    cleanups.push(() => dev.stop());
    await dev.ready();
    await online(backend, 'fb-dev');
    assert.ok(accepted.some((a) => a.id === 'fb-dev' && a.version === 4));

    const arrived = new Promise<[string, Buffer, IPublishPacket]>((resolve) =>
      dev.client.once('message', (...args) => resolve(args)),
    );
    const acks: { id?: string; status?: string }[] = [];
    const succeeded = new Promise<void>((resolve) => {
      backend.on('message', (m: DeviceMessage) => {
        if (m.device.id !== 'fb-dev' || m.kind !== 'commands/ack') return;
        const ack = JSON.parse(m.payload.toString()) as { id?: string; status?: string };
        acks.push(ack);
        if (ack.status === 'succeeded') resolve();
      });
    });
    const command = { id: 'c-fallback', name: 'led', params: { on: true, color: 'green' } };
    await backend.publishToDevice('fb-dev', 'commands', JSON.stringify(command), {
      qos: 1,
      correlationId: 'c-fallback',
      expiresAt: Date.now() + 60_000,
    });

    const [topic, payload, packet] = await arrived;
    assert.equal(topic, 'devices/fb-dev/commands');
    assert.equal((JSON.parse(payload.toString()) as { id: string }).id, 'c-fallback');
    // 3.1.1 has no properties: no response topic or correlation data, the payload id is all there is.
    assert.equal(packet.properties, undefined);
    await succeeded;
    assert.deepEqual(
      acks.map((a) => [a.id, a.status]),
      [
        ['c-fallback', 'accepted'],
        ['c-fallback', 'succeeded'],
      ],
    );
    assert.deepEqual(dev.led, { on: true, color: 'green' });
  });

  it('protocol 5 forced: ready() rejects with the refusal, the link stays down, and ready() after it rejects too', async () => {
    const refusedBefore = refused.length;
    const forced = link(`forced5-${process.pid}`, 5);
    const errors: Error[] = [];
    forced.on('error', (err) => errors.push(err));
    // Not once(): that rejects on the 'error' event, which comes first.
    const down = new Promise<void>((resolve) => forced.once('disconnect', resolve));
    await assert.rejects(forced.ready(), (err: Error & { code?: number }) => {
      assert.equal(err.code, 1);
      assert.match(err.message, /MQTT 5/);
      assert.match(err.message, /unacceptable protocol version/i);
      return true;
    });
    await down;
    assert.equal(forced.connected, false);
    assert.equal(forced.protocol, 5, 'no silent downgrade when 5 is forced');
    assert.equal(errors.length, 1);
    assert.equal(refused.length, refusedBefore + 1);
    // Asked again after the refusal, the link answers with it at once instead of waiting for a connect.
    await assert.rejects(forced.ready(), /MQTT 5/);
  });
});
