/** The 2.x write path (`/api/v2/write?org=&bucket=`, token) against VictoriaMetrics, which accepts it. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InfluxConnection } from '../../nodes/lib/influx/connection';
import { encodeLine } from '../../nodes/lib/influx/line-protocol';
import { InfluxSender } from '../../nodes/lib/influx/sender';
import { Spool, type SpoolPosition } from '../../nodes/lib/spool';
import { startVictoriaMetrics, tempDir, type Server } from '../support/servers';

describe('2.x write API against VictoriaMetrics', () => {
  let vm: Server;
  before(async () => {
    vm = await startVictoriaMetrics();
  });
  after(() => vm?.stop());

  it('delivers spooled points through /api/v2/write; values and timestamps read back exactly', async () => {
    const dir = tempDir('vm-spool');
    const spool = await Spool.open({ dir: join(dir.path, 'spool') });
    const conn = new InfluxConnection({
      flavour: '2',
      url: vm.url,
      org: 'iot',
      bucket: 'telemetry',
      token: 't',
    });
    const sender = new InfluxSender<SpoolPosition>(spool, (b, s) => conn.write(b, s), {
      flushIntervalMs: 10,
    });
    const base = 1_700_000_000_000;
    const points = Array.from({ length: 50 }, (_, i) =>
      Buffer.from(
        encodeLine({
          measurement: 'telemetry',
          tags: { device: `vm-${i % 5}`, type: 'thermo' },
          fields: { temperature: 20 + i / 4 },
          timeNs: `${base + i * 1000}000000`,
        }),
      ),
    );
    const written = new Promise<void>((resolve) =>
      sender.on('written', () => spool.stats().pendingRecords === 0 && resolve()),
    );
    await spool.append(points);
    sender.start();
    await written;
    assert.ok(conn.writePath().startsWith('api/v2/write?org=iot&bucket=telemetry&precision=ns'));
    await fetch(`${vm.url}/internal/force_flush`);
    const res = await fetch(
      `${vm.url}/api/v1/export?${new URLSearchParams({ 'match[]': 'telemetry_temperature', start: '0' })}`,
    );
    const series = (await res.text())
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { metric: Record<string, string>; values: number[]; timestamps: number[] },
      );
    const got = new Map<number, number>();
    for (const s of series) {
      assert.equal(s.metric.type, 'thermo');
      s.timestamps.forEach((t, k) => got.set(t, s.values[k]));
    }
    assert.equal(got.size, 50);
    for (let i = 0; i < 50; i++) assert.equal(got.get(base + i * 1000), 20 + i / 4);
    await sender.stop(0);
    await spool.close();
    conn.close();
    dir.remove();
  });
});
