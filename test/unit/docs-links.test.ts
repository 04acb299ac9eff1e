/**
 * Every relative link in the README and the docs points to a file in the repository, and every `#anchor` to a
 * heading of the file it names: a reader following a link never lands on nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/servers';

const tracked = execFileSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);
const trackedSet = new Set(tracked);
const documents = tracked.filter(
  (f) => f === 'README.md' || f === 'bench/README.md' || /^docs\/[^/]+\.md$/.test(f),
);

/** The text a reader sees as Markdown, without code blocks and code spans (a `[x](y)` there is no link). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Relative link targets: `[text](target)`, without external URLs (a scheme) and without mail links. */
function relativeLinks(markdown: string): string[] {
  const targets: string[] = [];
  for (const m of prose(markdown).matchAll(/\]\(([^)\s]+)\)/g))
    if (!/^[a-z][a-z0-9+.-]*:/i.test(m[1])) targets.push(m[1]);
  return targets;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  // Code spans stay in a heading's anchor (without their backticks), as on GitHub.
  const text = readFileSync(posix.join(repoRoot, file), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  const headings = text.match(/^#{1,6} .*$/gm) ?? [];
  return new Set(headings.map((h) => headingAnchor(h.replace(/^#+ /, ''))));
}

/** Why `target`, linked from `from`, does not lead anywhere; undefined when it does. */
function brokenBecause(from: string, target: string): string | undefined {
  const hash = target.indexOf('#');
  const path = hash < 0 ? target : target.slice(0, hash);
  const anchor = hash < 0 ? undefined : target.slice(hash + 1);
  const file = path === '' ? from : posix.normalize(posix.join(posix.dirname(from), path));
  if (file.startsWith('../') || posix.isAbsolute(path)) return 'outside the repository';
  const isFile = trackedSet.has(file);
  if (!isFile && !tracked.some((f) => f.startsWith(file.replace(/\/?$/, '/'))))
    return 'no such file in the repository';
  if (anchor !== undefined && isFile && file.endsWith('.md') && !anchorsOf(file).has(anchor))
    return `no heading #${anchor} in ${file}`;
  return undefined;
}

describe('links in the docs', () => {
  it('finds the README and the docs', () => {
    assert.ok(
      documents.includes('README.md') && documents.includes('docs/architecture.md'),
      documents.join(),
    );
  });

  it('turns headings into the anchors GitHub makes', () => {
    assert.equal(headingAnchor('InfluxDB schema (decisions)'), 'influxdb-schema-decisions');
    assert.equal(headingAnchor('HTTP API'), 'http-api');
    assert.equal(
      headingAnchor('Simulator (`iotb-simulator`, `flows/simulator.json`)'),
      'simulator-iotb-simulator-flowssimulatorjson',
    );
  });

  it('reads only relative links outside code', () => {
    const md =
      'a [x](docs/a.md) [y](https://nodered.org) [m](mailto:a@b.c) `[z](nope.md)`\n```\n[w](nope.md)\n```\n';
    assert.deepEqual(relativeLinks(md), ['docs/a.md']);
  });

  it('finds a missing file and a missing heading', () => {
    assert.equal(brokenBecause('docs/x.md', 'nope.md'), 'no such file in the repository');
    assert.equal(
      brokenBecause('docs/x.md', 'backend.md#no-such-heading'),
      'no heading #no-such-heading in docs/backend.md',
    );
    assert.equal(brokenBecause('docs/x.md', '../../elsewhere.md'), 'outside the repository');
    assert.equal(brokenBecause('docs/x.md', '../README.md#license'), undefined);
  });

  it('every relative link resolves to a file (and heading) in the repository', () => {
    const broken: string[] = [];
    let links = 0;
    for (const doc of documents) {
      for (const target of relativeLinks(readFileSync(posix.join(repoRoot, doc), 'utf8'))) {
        links++;
        const why = brokenBecause(doc, target);
        if (why) broken.push(`${doc}: ${target}: ${why}`);
      }
    }
    assert.deepEqual(broken, []);
    assert.ok(links > 40, `only ${links} links found: the link pattern no longer matches the docs`);
  });
});
