// Registry load time and token verification cost.
// Run: node --import tsx bench/registry.ts [devices=100000]
// CPU time is printed beside wall time: when other work takes the cores, wall time mostly measures that work.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import type { StoredDevice } from '../nodes/lib/registry/store';
import { TokenHasher, generateToken, DEVICE_TOKEN_PREFIX } from '../nodes/lib/registry/credentials';

const n = Number(process.argv[2] ?? 100_000);
const secret = 'bench-registry-secret-0123456789abcdef0123';
const dir = mkdtempSync(join(tmpdir(), 'iotb-bench-registry-'));
try {
  const file = join(dir, 'registry.json');
  // Set-up: the changes as an uncompacted journal (no per-change fsync); the first open compacts it
  // into the snapshot file, the timed second open is a normal start.
  const hasher = new TokenHasher(secret);
  const tokens: string[] = [];
  const devices: StoredDevice[] = [];
  for (let i = 0; i < n; i++) {
    const token = generateToken(DEVICE_TOKEN_PREFIX);
    if (i < 1000) tokens.push(token);
    devices.push({
      id: `dev-${i}`,
      type: 'thermo',
      name: `Device ${i}`,
      meta: { site: `site-${i % 100}` },
      enabled: true,
      createdAt: Date.now(),
      credentials: [{ hash: hasher.hash(token), createdAt: Date.now() }],
    });
  }
  writeFileSync(
    `${file}.journal`,
    [{ op: 'putType', type: { name: 'thermo' } }, ...devices.map((device) => ({ op: 'putDevice', device }))]
      .map((c) => JSON.stringify(c))
      .join('\n') + '\n',
  );
  new Registry(new FileDeviceStore(file), secret).close();
  const size = statSync(file).size;

  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const reg = new Registry(new FileDeviceStore(file), secret);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const loadCpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    `load ${reg.size} devices (${(size / 1e6).toFixed(1)} MB state file, snapshot, no journal): ${loadMs.toFixed(0)} ms wall, ${loadCpuMs.toFixed(0)} ms CPU`,
  );

  const iterations = 200_000;
  let ok = 0;
  let t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) if (reg.verifyToken(`dev-${i % 1000}`, tokens[i % 1000]).ok) ok++;
  let ns = Number(process.hrtime.bigint() - t) / iterations;
  console.log(`verifyToken (id + token, valid): ${(ns / 1000).toFixed(2)} µs/op (${ok} ok)`);
  const pw = tokens.map((s) => Buffer.from(s));
  t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) reg.verifyToken(`dev-${i % 1000}`, pw[i % 1000]);
  ns = Number(process.hrtime.bigint() - t) / iterations;
  console.log(`verifyToken (MQTT password Buffer): ${(ns / 1000).toFixed(2)} µs/op`);
  t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) reg.authenticateToken(tokens[i % 1000]);
  ns = Number(process.hrtime.bigint() - t) / iterations;
  console.log(`authenticateToken (bare bearer token): ${(ns / 1000).toFixed(2)} µs/op`);
  t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) reg.getDevice(`dev-${(i * 7919) % n}`);
  ns = Number(process.hrtime.bigint() - t) / iterations;
  console.log(`getDevice: ${ns.toFixed(0)} ns/op`);
  t = process.hrtime.bigint();
  const creates = 200;
  for (let i = 0; i < creates; i++) reg.createDevice({ id: `new-${i}`, type: 'thermo' });
  ns = Number(process.hrtime.bigint() - t) / creates;
  console.log(`createDevice (journal append + fdatasync): ${(ns / 1e6).toFixed(2)} ms/op`);
  t = process.hrtime.bigint();
  reg.close();
  console.log(`close (snapshot compaction): ${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(0)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
