/**
 * Firmware campaigns in the shipped backend flow: a real node-red process (embedded broker with twins, InfluxDB),
 * 200 reference devices that download, verify and "install" over the real HTTP API and report through their twins.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DeviceClient } from '../../nodes/lib/device-client';
import type { CampaignSummary, CampaignDevice, DeviceState } from '../../nodes/lib/firmware/campaign';
import { attachFirmwareUpdater, type FirmwareReport, type FirmwareUpdater } from '../../nodes/lib/firmware/device-updater';
import { startBackend, type Backend } from '../support/backend';
import { eventually } from '../support/servers';

const COUNT = 200;
const FAILING = 20; // 10 %
const VERSIONS = ['2.0.0', '3.0.0', '4.0.0', '5.0.0'];

interface Fleet {
  client: DeviceClient;
  updater: FirmwareUpdater;
  /** Desired versions seen that carried an offer, per campaign id. */
  offers: Map<string, Set<number>>;
  /** Downloads started, per campaign id. */
  starts: Map<string, number>;
}

type Campaign = CampaignSummary & { deviceStates: CampaignDevice[] };

describe('firmware campaigns over 200 reference devices (flows/backend.json, real node-red)', () => {
  let b: Backend;
  const fleet: Fleet[] = [];
  let meterToken = '';
  let firstToken = '';

  before(async () => {
    b = await startBackend([], {}, {
      patch: (flows) => {
        // A second device type, to show that a device cannot fetch another type's image.
        const reg = flows.find((n) => n.type === 'iotb-registry')!;
        reg.types = [...(reg.types as unknown[]), { name: 'meter', schema: '{"type": "object"}' }];
        // 200 devices fetch at once here; the shipped limits (50 at once, 1 request/s per device) would make
        // them wait out Retry-After, which is correct but slow for a test.
        const fw = flows.find((n) => n.type === 'iotb-firmware')!;
        Object.assign(fw, { maxDownloads: 500, downloadRatePerS: 0 });
        // All 200 devices connect from 127.0.0.1 at once; the shipped 20 connects/s per address would stagger them.
        Object.assign(flows.find((n) => n.type === 'iotb-broker')!, { connectRatePerIp: 1000 });
      },
    });
    for (const v of VERSIONS) {
      const res = await fetch(`${b.nr.url}/api/firmware/artifacts?type=sensor&version=${v}&notes=test%20build`, {
        method: 'POST',
        headers: { authorization: `Bearer ${b.operatorKey}`, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(randomBytes(64 * 1024)),
      });
      assert.equal(res.status, 201, await res.text());
    }
    const key = (await (await fetch(`${b.nr.url}/api/firmware/key`)).json()) as { publicKeyPem: string };
    const meter = await b.api('POST', '/api/devices', { body: { id: 'meter-1', type: 'meter' } });
    meterToken = (meter.body as { token: string }).token;
    const tokens: string[] = [];
    for (let i = 0; i < COUNT; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, j) =>
          b.api('POST', '/api/devices', { body: { id: `fw-${String(i + j).padStart(3, '0')}`, type: 'sensor' } }),
        ),
      );
      for (const r of batch) tokens.push((r.body as { token: string }).token);
    }
    firstToken = tokens[0];
    for (let i = 0; i < COUNT; i++) {
      const client = new DeviceClient({ url: b.mqttUrl, deviceId: `fw-${String(i).padStart(3, '0')}`, token: tokens[i], twin: true });
      const updater = attachFirmwareUpdater(client, {
        baseUrl: b.nr.url,
        token: tokens[i],
        deviceType: 'sensor',
        publicKey: key.publicKeyPem,
        version: '1.0.0',
        attempts: 60, // enough to outlast a node-red restart
        behaviour: i < FAILING ? 'fail' : 'normal',
      });
      const f: Fleet = { client, updater, offers: new Map(), starts: new Map() };
      client.on('desired', (doc) => {
        const c = (doc.state.firmware as { campaign?: string } | undefined)?.campaign;
        if (c) f.offers.set(c, (f.offers.get(c) ?? new Set()).add(doc.version));
      });
      client.on('reported', (patch) => {
        const fw = patch.firmware as FirmwareReport | undefined; // the updater's reports
        if (fw?.state === 'downloading' && fw.progress === 0 && fw.campaign)
          f.starts.set(fw.campaign, (f.starts.get(fw.campaign) ?? 0) + 1);
      });
      fleet.push(f);
    }
    await Promise.all(fleet.map((f) => f.client.ready()));
  });
  after(async () => {
    await Promise.all(fleet.map((f) => f.client.stop()));
    for (const f of fleet) f.updater.close();
    await b?.stop();
  });

  const get = async (id: string): Promise<Campaign> => {
    const r = await b.api('GET', `/api/firmware/campaigns/${id}?devices=true`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as Campaign;
  };
  const create = async (spec: Record<string, unknown>): Promise<string> => {
    const r = await b.api('POST', '/api/firmware/campaigns', { body: { type: 'sensor', soakS: 1, timeoutS: 120, ...spec } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return (r.body as Campaign).id;
  };
  /** Waits until the campaign is in one of `statuses` with no device in flight. */
  const settled = (id: string, statuses: string[], timeoutMs = 90_000): Promise<Campaign> => {
    let last: Campaign | undefined;
    return eventually(
      () =>
        `campaign ${id} ${statuses.join('|')} with nothing in flight; last seen ${last?.status} ` +
        JSON.stringify(last?.deviceStates.filter((d) => d.state !== 'SUCCEEDED' && d.state !== 'PENDING')),
      async () => {
        const c = (last = await get(id));
        const inFlight = c.deviceStates.some((d) => ['NOTIFIED', 'DOWNLOADING', 'INSTALLING'].includes(d.state));
        return statuses.includes(c.status) && !inFlight ? c : undefined;
      },
      timeoutMs,
    );
  };
  const counts = (c: Campaign): Partial<Record<DeviceState, number>> => {
    const out: Partial<Record<DeviceState, number>> = {};
    for (const d of c.deviceStates) out[d.state] = (out[d.state] ?? 0) + 1;
    return out;
  };
  const failing = new Set(Array.from({ length: FAILING }, (_, i) => `fw-${String(i).padStart(3, '0')}`));

  it('a device of another type gets 403 for the image, its own type gets it', async () => {
    const url = `${b.nr.url}/api/firmware/artifacts/sensor/2.0.0/download`;
    const other = await fetch(url, { headers: { authorization: `Bearer ${meterToken}` } });
    assert.equal(other.status, 403);
    assert.equal(((await other.json()) as { code: string }).code, 'WRONG_TYPE');
    const own = await fetch(url, { headers: { authorization: `Bearer ${firstToken}`, range: 'bytes=0-99' } });
    assert.equal(own.status, 206);
    assert.equal((await own.arrayBuffer()).byteLength, 100);
  });

  it('10 % failing devices: pauses in the wave that crosses 5 %, nobody of a later wave is notified; resume goes on', async () => {
    const id = await create({ version: '2.0.0', waves: [10, 50, 100], failureThreshold: 0.05, maxConcurrent: 200 });
    const first = await settled(id, ['PAUSED']);
    // The wave that must pause it: the first whose failing share is above 5 % (the waves are a hash order).
    const waveOf = new Map(first.deviceStates.map((d) => [d.id, d.wave]));
    const size = [0, 1, 2].map((w) => first.deviceStates.filter((d) => d.wave === w).length);
    const bad = [0, 1, 2].map((w) => [...failing].filter((d) => waveOf.get(d) === w).length);
    const expected = [0, 1, 2].find((w) => bad[w] / size[w] > 0.05)!;
    assert.equal(first.wave, expected, `failing per wave ${bad.join('/')} of ${size.join('/')}`);
    for (const d of first.deviceStates.filter((x) => x.wave > expected)) {
      assert.equal(d.state, 'PENDING', `${d.id} of a later wave`);
      const f = fleet.find((x) => x.client.deviceId === d.id)!;
      assert.equal(f.offers.get(id), undefined, `${d.id} received no offer`);
    }
    for (const d of first.deviceStates.filter((x) => failing.has(x.id) && x.state === 'FAILED'))
      assert.equal(d.reason, 'simulated install failure');

    // Resume: the paused wave is accepted; a later wave that crosses the threshold pauses again.
    let c = first;
    for (let rounds = 0; c.status === 'PAUSED' && rounds < 3; rounds++) {
      const r = await b.api('POST', `/api/firmware/campaigns/${id}/resume`);
      assert.equal(r.status, 200);
      c = await settled(id, ['PAUSED', 'COMPLETED']);
    }
    assert.equal(c.status, 'COMPLETED');
    assert.deepEqual(counts(c), { SUCCEEDED: COUNT - FAILING, FAILED: FAILING });
    assert.equal((await b.api('POST', `/api/firmware/campaigns/${id}/resume`)).status, 409);
  });

  it('abort cancels every device not yet final and withdraws the offer', async () => {
    const id = await create({ version: '3.0.0', waves: [10, 50, 100], failureThreshold: 0.05, maxConcurrent: 200 });
    const paused = await settled(id, ['PAUSED']);
    const r = await b.api('POST', `/api/firmware/campaigns/${id}/abort`);
    assert.equal(r.status, 200);
    const c = await get(id);
    assert.equal(c.status, 'ABORTED');
    const n = counts(c);
    assert.equal((n.PENDING ?? 0) + (n.NOTIFIED ?? 0) + (n.DOWNLOADING ?? 0) + (n.INSTALLING ?? 0), 0);
    assert.equal(n.CANCELED, counts(paused).PENDING);
    assert.equal((n.SUCCEEDED ?? 0) + (n.FAILED ?? 0) + (n.CANCELED ?? 0) + (n.SKIPPED ?? 0), COUNT);
    assert.equal((await b.api('POST', `/api/firmware/campaigns/${id}/abort`)).status, 409);
  });

  it('a campaign where every device succeeds ends with 200 SUCCEEDED', async () => {
    for (const f of fleet) f.updater.behaviour = 'normal';
    const id = await create({ version: '4.0.0', waves: [10, 50, 100], maxConcurrent: 200 });
    const c = await settled(id, ['COMPLETED']);
    assert.deepEqual(counts(c), { SUCCEEDED: COUNT });
    assert.deepEqual(
      c.waveProgress.map((w) => [w.percent, w.devices, w.counts.SUCCEEDED]),
      [
        [10, 20, 20],
        [50, 80, 80],
        [100, 100, 100],
      ],
    );
  });

  it('kill -9 of node-red mid-wave: the campaign continues after the restart and no device is notified twice', async () => {
    for (const f of fleet) f.updater.behaviour = 'normal';
    const id = await create({ version: '5.0.0', waves: [10, 50, 100], maxConcurrent: 15 });
    await eventually('wave 1 under way', async () => {
      const c = await get(id);
      return c.wave === 1 && (counts(c).SUCCEEDED ?? 0) >= 40 && (counts(c).PENDING ?? 0) > 0 ? c : undefined;
    });
    await b.nr.crashAndRestart();
    const c = await settled(id, ['COMPLETED'], 120_000);
    const unwell = c.deviceStates.filter((d) => d.state !== 'SUCCEEDED').map((d) => `${d.id}: ${d.state} ${d.reason}`);
    assert.deepEqual(unwell, []);
    for (const f of fleet) {
      assert.equal(f.offers.get(id)?.size, 1, `${f.client.deviceId}: one desired version with the offer`);
      assert.equal(f.starts.get(id), 1, `${f.client.deviceId}: one download started`);
    }
    // The transitions are in InfluxDB device_events, at most one NOTIFIED per device. (Those of the moment of
    // the crash may be missing: the campaign file is the record, device_events the audit trail.)
    const q = (state: string) =>
      b.influxql(
        `SELECT "from", "device" FROM device_events WHERE "event" = 'firmware' AND "campaign" = '${id}' AND "to" = '${state}'`,
      );
    // The events' writer sends its spool after the restart with its retry backoff: allow it a minute.
    await eventually(
      'the COMPLETED event in InfluxDB',
      async () => ((await q('COMPLETED')).length > 0 ? true : undefined),
      60_000,
    );
    const notified = (await q('NOTIFIED')).map((r) => r.device);
    assert.ok(notified.length > COUNT / 2, `${notified.length} NOTIFIED events`);
    assert.equal(new Set(notified).size, notified.length, 'no device has two NOTIFIED events');
  });
});
