import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { shippedFlow, startBackend, type Backend } from '../support/backend';
import { eventually } from '../support/servers';

interface DeviceRow {
  id: string;
  online: boolean;
}

/** flows/simulator.json (3 devices, a reading every 200 ms) beside flows/backend.json. */
const simulatorFlow = shippedFlow('simulator.json').map((n) =>
  n.type === 'iotb-simulator' ? { ...n, count: 3, intervalS: 0.2 } : n,
);

describe('flows/simulator.json with the backend flow in a real node-red process', () => {
  let b: Backend;
  before(async () => {
    b = await startBackend(simulatorFlow);
  });
  after(() => b?.stop());

  const onlineSims = async (): Promise<string[] | undefined> => {
    const r = await b.api('GET', '/api/devices?limit=100');
    const devices = (r.body as { devices: DeviceRow[] }).devices.filter((d) => d.id.startsWith('sim-'));
    return devices.length === 3 && devices.every((d) => d.online) ? devices.map((d) => d.id).sort() : undefined;
  };

  it('provisions the devices, which connect over MQTT and whose readings reach InfluxDB', async () => {
    assert.deepEqual(await eventually('3 simulated devices online', onlineSims), ['sim-1', 'sim-2', 'sim-3']);
    const readings = await eventually('readings of sim-2 in InfluxDB', async () => {
      const r = await b.api('GET', '/api/devices/sim-2/telemetry?field=temperature');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const rows = (r.body as { readings: { temperature: number | null }[] }).readings;
      return rows.filter((x) => typeof x.temperature === 'number').length >= 3 ? rows : undefined;
    });
    for (const x of readings)
      if (typeof x.temperature === 'number') assert.ok(x.temperature > 0 && x.temperature < 60, 'plausible');
  });

  it('executes commands sent through the HTTP API', async () => {
    const posted = await b.api('POST', '/api/devices/sim-1/commands', { body: { name: 'led', params: { on: true } } });
    assert.equal(posted.status, 202);
    const done = await eventually('the command to finish', async () => {
      const r = await b.api('GET', `/api/commands/${(posted.body as { id: string }).id}`);
      const c = r.body as { state: string; result?: unknown };
      return ['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT'].includes(c.state) ? c : undefined;
    });
    assert.equal(done.state, 'SUCCEEDED');
    assert.deepEqual(done.result, { on: true });
    // The device now reports its LED in its readings.
    await eventually('a reading with led=true', async () => {
      const rows = await b.influxql(`SELECT led FROM telemetry WHERE device = 'sim-1' AND led = true`);
      return rows.length > 0 ? rows : undefined;
    });
  });

  it('after a restart gets fresh tokens by rotation and reconnects the same devices', async () => {
    await b.nr.restart();
    await b.nr.waitForOutput(/embedded MQTT broker listening/);
    assert.deepEqual(await eventually('3 simulated devices online again', onlineSims), ['sim-1', 'sim-2', 'sim-3']);
    const list = await b.api('GET', '/api/devices?limit=100');
    assert.equal((list.body as { total: number }).total, 3, 'no duplicates were created');
  });
});
