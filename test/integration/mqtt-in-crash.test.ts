/**
 * The shipped external-broker flow (flows/external-broker.json) in a real node-red process behind a real
 * Mosquitto, writing to a real influxd, killed with SIGKILL five times during QoS 1 bursts and restarted:
 * every reading Mosquitto acknowledged to a device is in InfluxDB exactly once (by device, ts and value).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { Registry } from '../../nodes/lib/registry/registry';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { shippedFlow } from '../support/backend';
import { connectDevice, publishAll } from '../support/mqtt-device';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { eventually, influxRows, startInfluxd, startMosquitto, type Server } from '../support/servers';

const SECRET = 'mqtt-in-crash-test-registry-secret-0123456789';
const FLEET = 1000;
const FAST_PER_BURST = 2000;
/** When in a burst node-red is killed: after this share of the fast device's PUBACKs from Mosquitto. */
const KILL_AT = [0.05, 0.3, 0.6, 0.9, 1];

const fleetId = (n: number): string => `fleet-${String(n).padStart(4, '0')}`;
/**
 * A value that tells which reading it belongs to, so a misplaced or merged point shows; smooth, so that
 * iotb-quality (a median filter on spikes in the shipped flow) leaves it as sent.
 */
const valueOf = (i: number): number => 20 + i / 1e4;

/**
 * The shipped flow as it is, and with its node splitting the readings over three sessions. Several sessions do
 * not keep a device's readings in order (the broker hands each to any session), and iotb-quality judges a reading
 * against the device's previous one in arrival order (a smooth ramp with readings held back on another session
 * looks like spikes): that variant runs with quality's automatic checks off, so every value arrives as sent.
 */
for (const sessions of [undefined, 3])
  describe(`iotb-mqtt-in in a node-red process killed with -9 during QoS 1 bursts (${sessions === undefined ? 'shipped flow' : `${sessions} sessions`})`, () => {
    let mosquitto: Server;
    let influx: Server;
    let nr: NodeRedProcess;
    const clients: MqttClient[] = [];
    const t0 = Date.now() - 3_600_000;

    before(async () => {
      // Readings queue in the node's persistent session while node-red is down: Mosquitto's default cap
      // (1000 queued messages) would drop acknowledged readings of the test's bursts.
      mosquitto = await startMosquitto({ extraConfig: ['max_queued_messages 1000000'] });
      influx = await startInfluxd({ database: 'iot' });
      const flows = shippedFlow('external-broker.json');
      if (sessions !== undefined) {
        flows.find((n) => n.type === 'iotb-mqtt-in')!.sessions = sessions;
        flows.find((n) => n.type === 'iotb-quality')!.checkOtherFields = false;
      }
      const sensor = flows.find((n) => n.type === 'iotb-registry')!.types as {
        name: string;
        schema: string;
      }[];
      nr = await startNodeRed({
        flows,
        env: { IOTB_EXTERNAL_MQTT_URL: mosquitto.url, IOTB_INFLUX_URL: influx.url, IOTB_INFLUX_DB: 'iot' },
        prepareUserDir: (userDir) => {
          const file = join(userDir, 'iotb-registry.json');
          const reg = new Registry(new FileDeviceStore(file, { compactEvery: 100_000 }), SECRET);
          for (const t of sensor) reg.putType({ name: t.name, schema: JSON.parse(t.schema) as object });
          reg.createDevice({ id: 'fast-1', type: 'sensor' });
          for (let n = 0; n < FLEET; n++) reg.createDevice({ id: fleetId(n), type: 'sensor' });
          reg.close();
          writeFileSync(`${file}.secret`, SECRET, { mode: 0o600 });
        },
      });
    });
    after(async () => {
      for (const c of clients) await c.endAsync();
      await nr?.stop();
      await mosquitto?.stop();
      await influx?.stop();
    });

    async function client(id: string): Promise<MqttClient> {
      const c = await connectDevice(mosquitto.url, { clientId: id });
      clients.push(c);
      return c;
    }

    async function stored(where: string): Promise<{ time: number; device: string; temperature: number }[]> {
      return (await influxRows(
        influx.url,
        'iot',
        `SELECT temperature, device FROM telemetry WHERE ${where}`,
        'ms',
      )) as { time: number; device: string; temperature: number }[];
    }

    it('stores every reading Mosquitto acknowledged exactly once, across five kills and restarts', async () => {
      const fast = await client('crash-fast');
      // The fleet's 1,000 devices publish over 10 connections (100 topics each): what the node under test
      // sees is the same, a subscription with 1,000 devices' readings interleaved.
      const fleet = await Promise.all(Array.from({ length: 10 }, (_, k) => client(`crash-fleet-${k}`)));

      // The node's session must exist before the first burst (a broker drops what nobody subscribed to): probe
      // readings (before t0, not counted) until one is stored.
      let probes = 0;
      await eventually('the node subscribed and storing', async () => {
        probes++;
        await fast.publishAsync(
          'devices/fast-1/telemetry',
          JSON.stringify({ ts: t0 - probes, temperature: 1 }),
          {
            qos: 1,
          },
        );
        return (await stored(`device = 'fast-1'`)).length > 0 ? true : undefined;
      });

      let fastAcked = 0;
      for (let round = 0; round < KILL_AT.length; round++) {
        const base = round * FAST_PER_BURST;
        let inBurst = 0;
        let kill: () => void = () => undefined;
        const killPoint = new Promise<void>((resolve) => (kill = resolve));
        const fastBurst = publishAll(
          fast,
          FAST_PER_BURST,
          (i) => [
            'devices/fast-1/telemetry',
            JSON.stringify({ ts: t0 + base + i, temperature: valueOf(base + i) }),
          ],
          100,
          () => {
            fastAcked++;
            if (++inBurst >= KILL_AT[round] * FAST_PER_BURST) kill();
          },
        );
        const fleetBurst = Promise.all(
          fleet.map((c, k) =>
            publishAll(
              c,
              FLEET / fleet.length,
              (j) => {
                const n = k * (FLEET / fleet.length) + j;
                return [
                  `devices/${fleetId(n)}/telemetry`,
                  JSON.stringify({ ts: t0 + round, temperature: valueOf(n * 10 + round) }),
                ];
              },
              100,
            ),
          ),
        );
        await killPoint;
        await nr.crashAndRestart();
        await Promise.all([fastBurst, fleetBurst]);
      }
      assert.equal(fastAcked, KILL_AT.length * FAST_PER_BURST, 'Mosquitto acknowledged every publication');

      const fastTotal = KILL_AT.length * FAST_PER_BURST;
      const rows = await eventually(
        'every fast-device reading stored',
        async () => {
          const r = await stored(`device = 'fast-1' AND time >= ${t0}ms`);
          return r.length >= fastTotal ? r : undefined;
        },
        90_000,
      );
      assert.equal(rows.length, fastTotal);
      const misplaced = rows.filter((r) => r.temperature !== valueOf(r.time - t0));
      assert.deepEqual(
        misplaced.slice(0, 10).map((r) => `ts t0+${r.time - t0}: ${r.temperature}`),
        [],
        `${misplaced.length} points hold another reading's value`,
      );

      const fleetTotal = KILL_AT.length * FLEET;
      const fleetRows = await eventually(
        'every fleet reading stored',
        async () => {
          const r = await stored(`device =~ /^fleet-/`);
          return r.length >= fleetTotal ? r : undefined;
        },
        60_000,
      );
      assert.equal(fleetRows.length, fleetTotal);
      const keys = new Set<string>();
      for (const r of fleetRows) {
        const n = Number(r.device.slice('fleet-'.length));
        const round = r.time - t0;
        assert.ok(round >= 0 && round < KILL_AT.length, `${r.device} ts ${r.time}`);
        assert.equal(r.temperature, valueOf(n * 10 + round), `${r.device} round ${round}`);
        keys.add(`${r.device} ${round}`);
      }
      assert.equal(keys.size, fleetTotal, 'each device has one reading per burst');
    });
  });
