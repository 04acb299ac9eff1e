// Runs the test layers with node's test runner (+ tsx for TypeScript on Node 20, which has no glob in --test).
// Usage: node scripts/test.mjs [unit|node|integration|flows|editor|pack ...]   (default: every layer)
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const layers = process.argv.slice(2);
const selected = layers.length
  ? layers
  : readdirSync(join(root, 'test'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name !== 'support' && d.name !== 'fixtures')
      .map((d) => d.name);

const files = [];
for (const layer of selected) {
  const dir = join(root, 'test', layer);
  for (const entry of readdirSync(dir, { recursive: true })) {
    if (String(entry).endsWith('.test.ts')) files.push(join('test', layer, String(entry)));
  }
}
if (files.length === 0) {
  console.error(`no test files in: ${selected.join(', ')}`);
  process.exit(1);
}
files.sort();
const res = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=300000',
    '--test-reporter=spec',
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
);
process.exit(res.status ?? 1);
