// Copies what tsc does not emit: each node's editor HTML, icons and locales next to its compiled JS,
// and the shipped flows into examples/ (the only folder Node-RED lists under Import -> Examples).
import { cpSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const assetDirs = new Set(['icons', 'locales']);

for (const name of readdirSync(join(root, 'nodes'))) {
  const src = join(root, 'nodes', name);
  if (name === 'lib' || !statSync(src).isDirectory()) continue;
  const dest = join(root, 'dist', 'nodes', name);
  for (const entry of readdirSync(src)) {
    if (entry.endsWith('.html') || assetDirs.has(entry)) {
      cpSync(join(src, entry), join(dest, entry), { recursive: true });
    }
  }
}

const examples = join(root, 'examples');
rmSync(examples, { recursive: true, force: true });
if (existsSync(join(root, 'flows'))) {
  cpSync(join(root, 'flows'), examples, { recursive: true, filter: (p) => !p.endsWith('.md') });
}
