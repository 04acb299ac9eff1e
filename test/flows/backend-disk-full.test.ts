/**
 * The shipped backend flow in a real node-red process whose spools live on a 2 MiB tmpfs (needs root, as in CI),
 * with influxd stopped while devices keep sending over HTTP: once the volume is full, telemetry is answered 503
 * with Retry-After and nothing answered 202 is lost; health says why; when influxd is back, ingest resumes by
 * itself (no restart) and every reading answered 202 is in InfluxDB exactly once, none answered 503.
 */
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HealthReport } from '../../nodes/lib/health';
import { startBackend, type Backend } from '../support/backend';
import { eventually } from '../support/servers';
import { tmpfs, type Tmpfs } from '../support/tmpfs';

const DEVICES = ['dfull-0', 'dfull-1', 'dfull-2', 'dfull-3', 'dfull-4', 'dfull-5', 'dfull-6', 'dfull-7'];
const PER_REQUEST = 250;

interface Reading {
  ts: number;
  temperature: number;
  humidity: number;
}

describe('backend with its spools on a full 2 MiB volume, influxd down', () => {
  let volume: Tmpfs | undefined;
  let b: Backend | undefined;
  const tokens: Record<string, string> = {};
  /** `${device}@${ts}` of every reading answered 202, and of every reading answered 503 (never sent again). */
  const accepted = new Set<string>();
  const refused = new Set<string>();
  let next = 0;
  const t0 = Date.now() - 3_600_000;

  before(async () => {
    volume = tmpfs('backend-spool', '2m');
    const spools = volume.path;
    // The spools' directory in the user dir is the tmpfs (a link, so removing the user dir leaves the mount alone).
    b = await startBackend([], {}, { prepareUserDir: (dir) => symlinkSync(spools, join(dir, 'iotb-spool')) });
    for (const id of DEVICES) {
      const created = await b.api('POST', '/api/devices', { body: { id, type: 'sensor' } });
      assert.equal(created.status, 201);
      tokens[id] = created.body.token as string;
    }
  });
  after(async () => {
    await b?.nr.proc.stop();
    await b?.stop();
    volume?.remove();
  });

  const readings = (): Reading[] =>
    Array.from({ length: PER_REQUEST }, () => {
      const i = next++;
      return { ts: t0 + i, temperature: 15 + (i % 50) / 10, humidity: 40 + (i % 7) };
    });

  /** Posts one batch as a device does: honours 429's Retry-After; returns the final answer (202 or 503). */
  const post = async (device: string, batch: Reading[]) => {
    for (;;) {
      const res = await b!.api('POST', `/api/devices/${device}/telemetry`, { key: tokens[device], body: batch });
      if (res.status !== 429) {
        assert.ok(res.status === 202 || res.status === 503, `${res.status} ${JSON.stringify(res.body)}`);
        const into = res.status === 202 ? accepted : refused;
        for (const r of batch) into.add(`${device}@${r.ts}`);
        return res;
      }
      // The per-device rate limit: wait as told (a protocol wait, as a device would), then send the same again.
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
    }
  };

  /** Sends `batch` until it is answered 202, waiting Retry-After seconds after a 503, as a client should. */
  const postUntilAccepted = async (device: string, batch: Reading[], timeoutMs = 120_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      assert.ok(Date.now() < deadline, `ingest did not resume within ${timeoutMs / 1000} s`);
      const res = await b!.api('POST', `/api/devices/${device}/telemetry`, { key: tokens[device], body: batch });
      if (res.status === 202) {
        for (const r of batch) accepted.add(`${device}@${r.ts}`);
        return;
      }
      assert.ok(res.status === 503 || res.status === 429, `${res.status} ${JSON.stringify(res.body)}`);
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
    }
  };

  it('answers 503 with Retry-After once the volume is full, and health is degraded with the reason', async () => {
    await b!.influx.pause();
    let full: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 400 && !full; i++) {
      const res = await post(DEVICES[i % DEVICES.length], readings());
      if (res.status === 503) full = res;
    }
    assert.ok(full, `the volume never filled: ${accepted.size} readings accepted`);
    assert.ok(accepted.size > 10_000, `${accepted.size} readings fit on the volume before it was full`);
    assert.equal(full.body.code, 'DISK_FULL');
    assert.match(full.body.reason, /disk full/);
    assert.equal(full.headers.get('retry-after'), '5');
    // Still full: every device is refused, none of it stored.
    for (const device of DEVICES) assert.equal((await post(device, readings())).status, 503);

    const h = await b!.api('GET', '/api/health', { key: null });
    assert.equal(h.status, 503);
    const report = h.body as HealthReport;
    assert.equal(report.status, 'degraded');
    assert.equal(report.spool.status, 'degraded');
    const telemetry = report.database.writers.find((w) => w.name === 'telemetry')!;
    assert.equal(telemetry.spoolReason, 'spool volume full');
    assert.ok(report.reasons.some((r) => /^telemetry: spool volume full \(/.test(r)), report.reasons.join('; '));
    // iotb-quality may add records of its own (a level shift's first reading written again raw at its time).
    assert.ok(telemetry.spooled >= accepted.size, 'everything answered 202 waits in the spool');

    const metrics = (await b!.api('GET', '/metrics', { key: null })).body as string;
    const gauge = (name: string): number =>
      Number(new RegExp(`^${name}\\{writer="[^"]+",name="telemetry"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
    assert.ok(gauge('iotb_spool_pending_records') >= accepted.size);
    assert.ok(gauge('iotb_spool_pending_bytes') > 1024 * 1024);
    assert.ok(gauge('iotb_spool_volume_free_bytes') < 256 * 1024);
    assert.equal(gauge('iotb_spool_volume_size_bytes'), 2 * 1024 * 1024);
    assert.equal(gauge('iotb_spool_refusing'), 1);
  });

  it('resumes by itself once influxd is back; every reading answered 202 is stored exactly once', async (t) => {
    const restarts = b!.nr.proc.output().split('Started flows').length;
    await b!.influx.start();
    const back = Date.now();
    // A device that was refused keeps sending; the spool drains into InfluxDB and frees the volume.
    await postUntilAccepted(DEVICES[0], readings());
    t.diagnostic(`ingest accepted again ${Date.now() - back} ms after influxd started`);
    // 1,000 new readings after the outage, as before it.
    for (let i = 0; i < 1000 / PER_REQUEST; i++) await postUntilAccepted(DEVICES[i + 1], readings());

    const drained = await eventually(
      'the spools to drain and health to be ok',
      async () => {
        const h = await b!.api('GET', '/api/health', { key: null });
        return h.status === 200 && h.body.spool.depth === 0 ? (h.body as HealthReport) : undefined;
      },
      120_000,
    );
    assert.deepEqual(drained.reasons, []);
    assert.equal(b!.nr.proc.output().split('Started flows').length, restarts, 'no restart, no redeploy');

    const rows = await b!.influxql(`SELECT * FROM telemetry WHERE device =~ /^dfull-/`);
    const stored = rows.map((r) => `${String(r.device)}@${Number(r.time)}`);
    assert.equal(stored.length, new Set(stored).size);
    const storedSet = new Set(stored);
    const missing = [...accepted].filter((k) => !storedSet.has(k));
    assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${accepted.size} readings answered 202 are missing`);
    const refusedButStored = [...refused].filter((k) => storedSet.has(k));
    assert.deepEqual(refusedButStored.slice(0, 5), [], 'a reading answered 503 was not stored');
    assert.equal(stored.length, accepted.size);
    t.diagnostic(`${accepted.size} readings answered 202 and stored, ${refused.size} answered 503 and not stored`);
  });
});
