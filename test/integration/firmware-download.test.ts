/**
 * The firmware HTTP API on a real HTTP server with a real registry and artifact files: upload limits, download
 * with ETag and Range, type checks, and the reference device's updater resuming a dropped download and refusing
 * a tampered image.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ArtifactStore } from '../../nodes/lib/firmware/artifact-store';
import type { FirmwareOffer } from '../../nodes/lib/firmware/campaign';
import { FirmwareUpdater, type FirmwareReport } from '../../nodes/lib/firmware/device-updater';
import { DownloadServer, parseRange } from '../../nodes/lib/firmware/download';
import { FirmwareHttpApi } from '../../nodes/lib/firmware/http-api';
import { FirmwareSigner, SIGNING_KEY_FILE, verifyManifest } from '../../nodes/lib/firmware/signing';
import { compareSemver, isSemver } from '../../nodes/lib/firmware/semver';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { tempDir } from '../support/servers';

const IMAGE = randomBytes(300_000);
const SHA = createHash('sha256').update(IMAGE).digest('hex');

describe('firmware artifacts over HTTP', () => {
  const dir = tempDir('firmware');
  let registry: Registry;
  let store: ArtifactStore;
  let server: Server;
  let base: string;
  const operatorKey = 'op-key-for-firmware-tests-0123456789';
  let lampToken: string;
  let meterToken: string;
  /** When set, the next download response is cut after this many bytes (a dropped connection). */
  let cutAfter: number | undefined;

  before(async () => {
    registry = new Registry(
      new FileDeviceStore(join(dir.path, 'registry.json')),
      'firmware-test-registry-secret-0123456789abcdef',
      {
        operatorKey,
      },
    );
    registry.putType({ name: 'lamp', schema: { type: 'object' } });
    registry.putType({ name: 'meter', schema: { type: 'object' } });
    lampToken = registry.createDevice({ id: 'lamp-1', type: 'lamp' }).token;
    meterToken = registry.createDevice({ id: 'meter-1', type: 'meter' }).token;
    store = new ArtifactStore(join(dir.path, 'fw'), FirmwareSigner.open(join(dir.path, 'fw')), {
      maxBytes: 1_000_000,
      knownType: (t) => registry.getType(t) !== undefined,
    });
    const api = new FirmwareHttpApi({
      registry,
      artifacts: store,
      downloads: new DownloadServer({ maxConcurrent: 2, ratePerDeviceS: 50 }),
      campaigns: () => undefined,
    });
    server = createServer((req, res) => {
      if (cutAfter !== undefined && req.url?.endsWith('/download')) {
        const limit = cutAfter;
        cutAfter = undefined;
        let sent = 0;
        const write = res.write.bind(res);
        res.write = ((chunk: Buffer, ...rest: never[]) => {
          if (sent + chunk.length > limit) {
            write(chunk.subarray(0, limit - sent));
            res.socket?.destroy();
            return false;
          }
          sent += chunk.length;
          return write(chunk, ...rest);
        }) as typeof res.write;
      }
      if (!api.handle(req, res)) res.writeHead(404).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    server.closeAllConnections();
    await once(server, 'close');
    registry.close();
    dir.remove();
  });

  const upload = (query: string, body: Buffer | string, key = operatorKey) =>
    fetch(`${base}/api/firmware/artifacts?${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream' },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
  const download = (path: string, token: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/api/firmware/artifacts/${path}/download`, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });

  it('stores an upload with size, SHA-256 and an Ed25519 signature; refuses duplicates, bad versions and big images', async () => {
    const res = await upload('type=lamp&version=2.0.0&notes=faster%20boot', IMAGE);
    assert.equal(res.status, 201);
    const a = (await res.json()) as { size: number; sha256: string; signature: string; notes: string };
    assert.equal(a.size, IMAGE.length);
    assert.equal(a.sha256, SHA);
    assert.equal(a.notes, 'faster boot');
    const key = (await (await fetch(`${base}/api/firmware/key`)).json()) as { publicKeyPem: string };
    assert.ok(
      verifyManifest(
        key.publicKeyPem,
        { type: 'lamp', version: '2.0.0', size: a.size, sha256: SHA },
        a.signature,
      ),
    );
    assert.ok(
      !verifyManifest(
        key.publicKeyPem,
        { type: 'meter', version: '2.0.0', size: a.size, sha256: SHA },
        a.signature,
      ),
    );
    assert.equal(statSync(join(dir.path, 'fw', SIGNING_KEY_FILE)).mode & 0o777, 0o600);

    const refusals: [string, Buffer | string, number, string][] = [
      ['type=lamp&version=2.0.0', IMAGE, 409, 'DUPLICATE_VERSION'],
      ['type=lamp&version=2.0', 'x', 400, 'INVALID'],
      ['type=ghost&version=1.0.0', 'x', 400, 'INVALID'],
      ['type=lamp&version=3.0.0', Buffer.alloc(1_000_001), 413, 'TOO_LARGE'],
      ['type=lamp&version=3.0.0', '', 400, 'INVALID'],
    ];
    for (const [q, body, status, code] of refusals) {
      const r = await upload(q, body);
      assert.equal(r.status, status, q);
      assert.equal(((await r.json()) as { code: string }).code, code, q);
    }
    assert.equal((await upload('type=lamp&version=3.0.0', 'x', 'wrong-key')).status, 401);
    assert.equal(
      (await upload('type=lamp&version=3.0.0', 'x', lampToken)).status,
      401,
      'a device cannot upload',
    );
    const list = (await (
      await fetch(`${base}/api/firmware/artifacts`, { headers: { authorization: `Bearer ${operatorKey}` } })
    ).json()) as { artifacts: { version: string }[] };
    assert.deepEqual(
      list.artifacts.map((x) => x.version),
      ['2.0.0'],
    );
    // A restart finds the artifact again (manifest on disk), and the same key.
    const again = new ArtifactStore(join(dir.path, 'fw'), FirmwareSigner.open(join(dir.path, 'fw')), {
      maxBytes: 1,
    });
    assert.equal(again.get('lamp', '2.0.0')?.sha256, SHA);
    assert.equal(again.publicKeyPem, key.publicKeyPem);
  });

  it('serves devices of the type only, with ETag, If-None-Match and Range', async () => {
    const whole = await download('lamp/2.0.0', lampToken);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('etag'), `"${SHA}"`);
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(IMAGE));
    assert.equal((await download('lamp/2.0.0', lampToken, { 'if-none-match': `"${SHA}"` })).status, 304);
    const part = await download('lamp/2.0.0', lampToken, { range: 'bytes=1000-1999' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1000-1999/${IMAGE.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(IMAGE.subarray(1000, 2000)));
    const stale = await download('lamp/2.0.0', lampToken, { range: 'bytes=10-', 'if-range': '"other"' });
    assert.equal(stale.status, 200, 'If-Range with another ETag gets the whole image');
    await stale.arrayBuffer();
    const bad = await download('lamp/2.0.0', lampToken, { range: `bytes=${IMAGE.length}-` });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), `bytes */${IMAGE.length}`);

    const other = await download('lamp/2.0.0', meterToken);
    assert.equal(other.status, 403);
    assert.equal(((await other.json()) as { code: string }).code, 'WRONG_TYPE');
    assert.equal((await download('lamp/2.0.0', 'not-a-token')).status, 401);
    assert.equal((await download('lamp/9.9.9', lampToken)).status, 404);
  });

  it('parses byte ranges as RFC 9110 says', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 99 });
    assert.equal(parseRange('bytes=0-1,5-6', 100), undefined, 'several ranges: the whole file');
    assert.equal(parseRange('items=0-1', 100), undefined);
    assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
    assert.equal(parseRange('bytes=5-1', 100), 'unsatisfiable');
  });

  it('orders semantic versions by precedence', () => {
    const sorted = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.2.0',
      '1.10.0',
    ];
    for (let i = 1; i < sorted.length; i++)
      assert.ok(compareSemver(sorted[i - 1], sorted[i]) < 0, `${sorted[i - 1]} < ${sorted[i]}`);
    assert.equal(compareSemver('1.0.0+build.1', '1.0.0'), 0);
    for (const bad of ['1.0', '01.0.0', '1.0.0-', 'v1.0.0', '1.0.0+', 'x'.repeat(65)])
      assert.ok(!isSemver(bad), bad);
  });

  describe('the reference device updater', () => {
    let publicKey: string;
    before(async () => {
      publicKey = ((await (await fetch(`${base}/api/firmware/key`)).json()) as { publicKeyPem: string })
        .publicKeyPem;
    });
    const offer = (over: Partial<FirmwareOffer> = {}): FirmwareOffer => ({
      version: '2.0.0',
      url: '/api/firmware/artifacts/lamp/2.0.0/download',
      size: IMAGE.length,
      sha256: SHA,
      signature: store.get('lamp', '2.0.0')!.signature,
      campaign: 'c1',
      ...over,
    });
    const updater = (reports: FirmwareReport[], token = lampToken) =>
      new FirmwareUpdater({
        baseUrl: base,
        token,
        deviceType: 'lamp',
        publicKey,
        version: '1.0.0',
        report: (r) => {
          reports.push(r);
        },
      });

    it('resumes a dropped download with Range, verifies it and reports the new version', async () => {
      const reports: FirmwareReport[] = [];
      const u = updater(reports);
      const seen: { bytes: number; requests: number }[] = [];
      u.on('downloaded', (d) => seen.push(d));
      cutAfter = 100_000;
      await u.offer(offer());
      assert.deepEqual(seen, [{ bytes: IMAGE.length, requests: 2 }], 'one drop, one resumed request');
      assert.deepEqual(
        reports.map((r) => r.state),
        ['downloading', 'installing', 'idle'],
      );
      assert.equal(reports.at(-1)!.version, '2.0.0');
      assert.equal(u.version, '2.0.0');
    });

    it('refuses a tampered image (one byte changed on disk) and a forged hash or signature', async () => {
      const file = store.filePath({ type: 'lamp', version: '2.0.0' });
      const good = readFileSync(file);
      const tampered = Buffer.from(good);
      tampered[12345] ^= 0x01;
      writeFileSync(file, tampered);
      try {
        const reports: FirmwareReport[] = [];
        await updater(reports).offer(offer());
        assert.equal(reports.at(-1)!.state, 'failed');
        assert.match(reports.at(-1)!.error!, /SHA-256/);
        // An attacker who also rewrites the offer's hash still lacks the signing key.
        const forged: FirmwareReport[] = [];
        const sha256 = createHash('sha256').update(tampered).digest('hex');
        await updater(forged).offer(offer({ sha256 }));
        assert.match(forged.at(-1)!.error!, /signature does not verify/);
      } finally {
        writeFileSync(file, good);
      }
    });

    it('reports a refused download (another type) as failed with the reason', async () => {
      const reports: FirmwareReport[] = [];
      await updater(reports, meterToken).offer(offer());
      assert.equal(reports.at(-1)!.state, 'failed');
      assert.match(reports.at(-1)!.error!, /HTTP 403/);
    });
  });
});
