import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InfluxConnection } from '../../nodes/lib/influx/connection';
import { diagnose } from '../../nodes/lib/influx/diagnose';
import { runQuery, toChart } from '../../nodes/lib/influx/query';
import { startInfluxDocServer, type InfluxDocServer } from '../support/influx-doc-server';
import { freePort, startInfluxd, type Server } from '../support/servers';

async function influxql(url: string, q: string, auth?: string): Promise<any> {
  const res = await fetch(`${url}/query`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth ? { authorization: auth } : {}),
    },
    body: new URLSearchParams({ q }),
  });
  return res.json();
}

describe('InfluxDB connection test and queries', () => {
  let influx: Server;
  let doc: InfluxDocServer;
  const basic = `Basic ${Buffer.from('admin:s3cret-admin').toString('base64')}`;
  before(async () => {
    influx = await startInfluxd({ authEnabled: true });
    await influxql(influx.url, "CREATE USER admin WITH PASSWORD 's3cret-admin' WITH ALL PRIVILEGES");
    await influxql(influx.url, 'CREATE DATABASE iot', basic);
    const lines = [
      'telemetry,device=d1,type=t temperature=20.5 1700000000000000000',
      'telemetry,device=d1,type=t temperature=21.5 1700000001000000000',
      'telemetry,device=d2,type=t temperature=30 1700000000000000000',
    ].join('\n');
    const w = await fetch(`${influx.url}/write?db=iot`, {
      method: 'POST',
      headers: { authorization: basic },
      body: lines,
    });
    assert.equal(w.status, 204);
    doc = await startInfluxDocServer();
  });
  after(async () => {
    await influx?.stop();
    await doc?.close();
  });

  const v1 = (over: Partial<ConstructorParameters<typeof InfluxConnection>[0]> = {}): InfluxConnection =>
    new InfluxConnection({
      flavour: '1',
      url: influx.url,
      database: 'iot',
      username: 'admin',
      password: 's3cret-admin',
      ...over,
    });

  /** Each connection's "Test connection" verdict: ok or not, and the sentence it says. */
  const expectDiagnoses = async (cases: [InfluxConnection, boolean, RegExp][]): Promise<void> => {
    for (const [conn, ok, re] of cases) {
      const d = await diagnose(conn);
      conn.close();
      assert.equal(d.ok, ok, d.message);
      assert.match(d.message, re);
    }
  };

  it('says precisely what is wrong with a 1.x connection, or that it works', async () => {
    const port = await freePort();
    const cases: [InfluxConnection, boolean, RegExp][] = [
      [
        v1({ url: `http://127.0.0.1:${port}` }),
        false,
        /cannot reach 127\.0\.0\.1:\d+: nothing listens .*connection refused/,
      ],
      [v1({ password: 'wrong' }), false, /refused the credentials \(401\)/],
      [v1({ database: 'nope' }), false, /database "nope" does not exist \(found: iot\)/],
      [v1(), true, /connected to InfluxDB 1\.6\.\S+, database "iot" exists/],
    ];
    await expectDiagnoses(cases);
  });

  it('says what is wrong with 2.x and 3.x connections (server answering as the InfluxDB docs say)', async () => {
    const c = (o: Partial<ConstructorParameters<typeof InfluxConnection>[0]>): InfluxConnection =>
      new InfluxConnection({
        flavour: '2',
        url: doc.url,
        org: 'iot',
        bucket: 'telemetry',
        token: doc.token,
        ...o,
      });
    const cases: [InfluxConnection, boolean, RegExp][] = [
      [c({ token: 'bad' }), false, /refused the credentials \(401\): unauthorized access/],
      [c({ bucket: 'other' }), false, /bucket "other" does not exist in organisation "iot"/],
      [c({ org: 'acme' }), false, /organisation "acme" not found/],
      [c({}), true, /bucket "telemetry" exists/],
      [c({ flavour: '3', database: 'iot', token: 'bad' }), false, /refused the credentials \(401\)/],
      [c({ flavour: '3', database: 'nope' }), false, /database "nope" does not exist \(found: iot\)/],
      [c({ flavour: '3', database: 'iot' }), true, /database "iot" exists/],
      [c({ url: influx.url }), false, /has no \/api\/v2\/buckets/],
    ];
    await expectDiagnoses(cases);
  });

  it('binds InfluxQL parameters instead of concatenating them', async () => {
    const conn = v1();
    const q = 'SELECT temperature, device FROM telemetry WHERE device = $device ORDER BY time';
    const rows = await runQuery(conn, { language: 'influxql', query: q, params: { device: 'd1' } });
    assert.deepEqual(rows, [
      { measurement: 'telemetry', time: 1700000000000, temperature: 20.5, device: 'd1' },
      { measurement: 'telemetry', time: 1700000001000, temperature: 21.5, device: 'd1' },
    ]);
    const injected = await runQuery(conn, {
      language: 'influxql',
      query: q,
      params: { device: "d1' OR device = 'd2" },
    });
    assert.deepEqual(injected, []);
    // Read-only: InfluxDB 1.x would run these even over GET.
    for (const query of [
      'DROP DATABASE iot',
      'SELECT 1 FROM x; DROP DATABASE iot',
      'SELECT * INTO y FROM telemetry',
    ])
      await assert.rejects(runQuery(conn, { language: 'influxql', query }), /only reading queries/, query);
    assert.equal(
      (
        await runQuery(conn, {
          language: 'influxql',
          query: 'SHOW TAG VALUES WITH KEY = "device" WHERE device != \';DROP\'',
        })
      ).length,
      2,
    );
    assert.deepEqual(toChart(rows), [
      {
        series: ['temperature device=d1'],
        data: [
          [
            { x: 1700000000000, y: 20.5 },
            { x: 1700000001000, y: 21.5 },
          ],
        ],
        labels: [''],
      },
    ]);
    await assert.rejects(
      runQuery(conn, { language: 'influxql', query: q, params: { 'x y': 1 } }),
      /not an identifier/,
    );
    await assert.rejects(
      runQuery(conn, { language: 'sql', query: 'SELECT 1' }),
      /need the InfluxDB 3\.x API/,
    );
    conn.close();
  });
});
