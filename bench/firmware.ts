/**
 * Firmware download throughput: 100 devices fetch one image at once through the firmware API (device token
 * check, type check, rate and concurrency limits, ETag, streaming from disk) on a plain Node HTTP server, next to
 * a baseline in the same run: the same file streamed by a bare handler without any of those checks. Rounds
 * alternate between the two; the median of each is reported with the ratio.
 *
 *   npm run build && node --import tsx bench/firmware.ts [--devices 100] [--mb 8] [--rounds 5] [--short]
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { ArtifactStore } from '../nodes/lib/firmware/artifact-store';
import { DownloadServer } from '../nodes/lib/firmware/download';
import { FirmwareHttpApi } from '../nodes/lib/firmware/http-api';
import { FirmwareSigner } from '../nodes/lib/firmware/signing';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import { tempDir } from '../test/support/servers';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '100' },
      mb: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '5' },
      short: { type: 'boolean', default: false },
    },
  });
  const devices = Number(values.devices);
  const mb = values.short ? 1 : Number(values.mb);
  const rounds = values.short ? 3 : Number(values.rounds);

  const dir = tempDir('bench-firmware');
  const registry = new Registry(
    new FileDeviceStore(join(dir.path, 'registry.json')),
    randomBytes(32).toString('hex'),
  );
  registry.putType({ name: 'sensor', schema: { type: 'object' } });
  const tokens = Array.from(
    { length: devices },
    (_, i) => registry.createDevice({ id: `d${i}`, type: 'sensor' }).token,
  );
  const store = new ArtifactStore(join(dir.path, 'fw'), FirmwareSigner.open(join(dir.path, 'fw')), {
    maxBytes: 1024 * 1024 * 1024,
  });
  const artifact = await store.upload(Readable.from([randomBytes(mb * 1024 * 1024)]), {
    type: 'sensor',
    version: '1.0.0',
  });
  const file = store.filePath(artifact);
  const api = new FirmwareHttpApi({
    registry,
    artifacts: store,
    downloads: new DownloadServer({ maxConcurrent: devices, ratePerDeviceS: 10 }),
    campaigns: () => undefined,
  });
  const server = createServer((req, res) => {
    if (req.url === '/bare') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': artifact.size });
      createReadStream(file, { highWaterMark: 256 * 1024 }).pipe(res);
      return;
    }
    if (!api.handle(req, res)) res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  /** All devices fetch at once; resolves with MB/s over the whole round. */
  async function round(path: string): Promise<number> {
    const start = performance.now();
    const sizes = await Promise.all(
      tokens.map(async (t) => {
        const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${t}` } });
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        let n = 0;
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) n += chunk.length;
        return n;
      }),
    );
    const bytes = sizes.reduce((a, b) => a + b, 0);
    if (bytes !== artifact.size * devices) throw new Error(`short download: ${bytes}`);
    return bytes / 1024 / 1024 / ((performance.now() - start) / 1000);
  }

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const bare: number[] = [];
  const firmware: number[] = [];
  await round('/bare'); // warm-up
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? (['firmware', 'bare'] as const) : (['bare', 'firmware'] as const);
    for (const which of order)
      (which === 'bare' ? bare : firmware).push(
        await round(which === 'bare' ? '/bare' : api.downloadPath('sensor', '1.0.0')),
      );
  }
  server.close();
  server.closeAllConnections();
  registry.close();
  dir.remove();

  const fmt = (xs: number[]): string =>
    `${median(xs).toFixed(0)} MB/s (${xs.map((x) => x.toFixed(0)).join(', ')})`;
  console.log(
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
  );
  console.log(`${devices} devices × ${mb} MB image, ${rounds} rounds`);
  console.log(`bare file stream (baseline): ${fmt(bare)}`);
  console.log(`firmware download API:       ${fmt(firmware)}`);
  console.log(`ratio firmware / baseline:   ${(median(firmware) / median(bare)).toFixed(2)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
