// Copies what tsc does not emit: each node's editor HTML, icons and locales next to its compiled JS,
// and the shipped flows into examples/ (the only folder Node-RED lists under Import -> Examples).
// A node's editor script lives in nodes/<node>/editor.js, so that eslint and prettier cover it like the rest
// of the code; the build puts it into the HTML file Node-RED serves, in front of the templates and help.
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const assetDirs = new Set(['icons', 'locales']);
const EDITOR_SCRIPT = 'editor.js';

/** The node's editor HTML with its editor script inlined (Node-RED reads one HTML file per node set). */
function editorHtml(src, htmlFile) {
  const html = readFileSync(join(src, htmlFile), 'utf8');
  const scriptFile = join(src, EDITOR_SCRIPT);
  if (!existsSync(scriptFile)) return html;
  const script = readFileSync(scriptFile, 'utf8');
  // A literal "</script" would end the inlined element early and the rest would show as page text.
  if (/<\/script/i.test(script)) throw new Error(`${scriptFile}: must not contain "</script"`);
  return `<script type="text/javascript">\n${script}</script>\n\n${html}`;
}

for (const name of readdirSync(join(root, 'nodes'))) {
  const src = join(root, 'nodes', name);
  if (name === 'lib' || !statSync(src).isDirectory()) continue;
  const dest = join(root, 'dist', 'nodes', name);
  for (const entry of readdirSync(src)) {
    if (entry.endsWith('.html')) {
      writeFileSync(join(dest, entry), editorHtml(src, entry));
    } else if (assetDirs.has(entry)) {
      cpSync(join(src, entry), join(dest, entry), { recursive: true });
    }
  }
}

const examples = join(root, 'examples');
rmSync(examples, { recursive: true, force: true });
if (existsSync(join(root, 'flows'))) {
  cpSync(join(root, 'flows'), examples, { recursive: true, filter: (p) => !p.endsWith('.md') });
}
