import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { shippedFlow, type FlowNode } from '../support/backend';
import { eventually, startInfluxd, type Server } from '../support/servers';

/** A shipped flow with its InfluxDB config node pointed at the test's influxd. */
function shipped(name: string, influxUrl: string): FlowNode[] {
  return shippedFlow(name).map((n) => (n.type === 'iotb-influx' ? { ...n, url: influxUrl } : n));
}

describe('flows/storage-write.json and flows/storage-query.json in a real node-red process', () => {
  let influx: Server;
  let nr: NodeRedProcess;
  before(async () => {
    influx = await startInfluxd({ database: 'iot' });
    nr = await startNodeRed({
      flows: [...shipped('storage-write.json', influx.url), ...shipped('storage-query.json', influx.url)],
    });
  });
  after(async () => {
    await nr?.stop();
    await influx?.stop();
  });

  it('accepts readings with 202, refuses bad ones with 400 and a reason, and answers the device history', async () => {
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${nr.url}/api/demo/readings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ device: 'flow-1', temperature: 20 + i, ts: now - 3000 + i * 1000 }),
      });
      assert.equal(res.status, 202);
      assert.deepEqual(await res.json(), { accepted: 1 });
    }
    const bad = await fetch(`${nr.url}/api/demo/readings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ device: 'flow-1', _secret: 1 }),
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).code, 'RESERVED_NAME');

    // Polling: the readings reach InfluxDB when the writer's batch interval ends (a foreign process).
    const body: any = await eventually(
      'three readings in InfluxDB',
      async () => {
        const res = await fetch(`${nr.url}/api/demo/history?device=flow-1&minutes=10`);
        assert.equal(res.status, 200);
        const history = (await res.json()) as { rows: unknown[] };
        return history.rows.length >= 3 ? history : undefined;
      },
      30_000,
    );
    assert.deepEqual(
      body.rows.map((r: { temperature: number }) => r.temperature),
      [22, 21, 20],
    );
    assert.deepEqual(body.chart[0].series, ['temperature device=flow-1']);
    // The device id is a bound parameter: an injection attempt matches nothing.
    const inj = await fetch(`${nr.url}/api/demo/history?device=${encodeURIComponent("x' OR device =~ /.*/ --")}`);
    assert.deepEqual((await inj.json()).rows, []);
  });
});
