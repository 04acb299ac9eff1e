import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startInfluxd, startMosquitto, startVictoriaMetrics } from '../support/servers';

describe('test support servers', () => {
  it('starts influxd, writes and reads a point over the 1.x API, and removes its data dir', async () => {
    const influx = await startInfluxd();
    try {
      let res = await fetch(`${influx.url}/query`, {
        method: 'POST',
        body: new URLSearchParams({ q: 'CREATE DATABASE t' }),
      });
      assert.equal(res.status, 200);
      res = await fetch(`${influx.url}/write?db=t&precision=ms`, {
        method: 'POST',
        body: 'm,device=a v=1.5 1700000000000',
      });
      assert.equal(res.status, 204);
      res = await fetch(`${influx.url}/query?db=t&q=${encodeURIComponent('SELECT v FROM m')}`);
      const body = await res.json();
      assert.deepEqual(body.results[0].series[0].values, [['2023-11-14T22:13:20Z', 1.5]]);
    } finally {
      await influx.stop();
    }
    assert.equal(existsSync(influx.dir), false);
  });

  it('starts mosquitto and round-trips a QoS 1 message', async () => {
    const broker = await startMosquitto();
    const client = await mqtt.connectAsync(broker.url);
    try {
      await client.subscribeAsync('t/1', { qos: 1 });
      const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
      await client.publishAsync('t/1', 'hello', { qos: 1 });
      assert.equal(await got, 'hello');
    } finally {
      await client.endAsync();
      await broker.stop();
    }
  });

  it('starts VictoriaMetrics and accepts line protocol on /api/v2/write', async () => {
    const vm = await startVictoriaMetrics();
    try {
      const res = await fetch(`${vm.url}/api/v2/write?org=o&bucket=b&precision=ms`, {
        method: 'POST',
        body: 'm,device=a v=2 1700000000000',
      });
      assert.equal(res.status, 204);
    } finally {
      await vm.stop();
    }
  });
});
