/**
 * Fails when a tracked file points outside the repository: a folder beside the checkout, a document that is not
 * in it, one machine's absolute paths, or a Markdown link that climbs above the repository root. A clone must
 * build, test and read on its own, wherever it is put.
 *
 *   node --import tsx scripts/check-standalone.ts     (run by .ci/run before the tests)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, posix, resolve } from 'node:path';

export interface OutsideReference {
  file: string;
  line: number;
  rule: string;
  text: string;
}

/** Each rule matches one line; the patterns are written so that this file's own source does not match them. */
const LINE_RULES: { rule: string; pattern: RegExp }[] = [
  // A sibling folder of the checkout, as a path or as the segments of a join().
  { rule: 'a folder beside the checkout', pattern: /\.\.\/shared\b|['"]\.\.['"]\s*,\s*['"]shared['"]/ },
  { rule: 'joins ".." onto the repository root', pattern: /\brepoRoot\s*,\s*['"]\.\.['"]/ },
  { rule: 'a design document that is not in the repository', pattern: /\bDESIGN\.md\b/ },
  // Absolute paths of a workplace or a home directory (a URL's path is preceded by a host, so it never matches).
  { rule: "one machine's absolute path", pattern: /(?<![\w.~-])\/(?:work|home|root)\/[\w.-]/ },
];

/** `[text](target)` in Markdown; reference definitions and autolinks are not used in this repository. */
const MARKDOWN_LINK = /\]\(([^)\s]+)\)/g;

/** Data vendored unchanged from upstream: its text is input for tests, never a path this repository reads. */
const VENDORED = 'test/fixtures/third-party/';

/** The references outside the repository in one file (`file` relative to the repository root, `/`-separated). */
export function findOutsideReferences(file: string, text: string): OutsideReference[] {
  const found: OutsideReference[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    for (const { rule, pattern } of LINE_RULES)
      if (pattern.test(line)) found.push({ file, line: i + 1, rule, text: line.trim() });
    if (!file.endsWith('.md')) continue;
    for (const m of line.matchAll(MARKDOWN_LINK)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      const resolved = posix.normalize(posix.join(posix.dirname(file), target.split('#')[0]));
      if (posix.isAbsolute(target) || resolved === '..' || resolved.startsWith('../'))
        found.push({ file, line: i + 1, rule: 'a Markdown link outside the repository', text: target });
    }
  }
  return found;
}

/** Every tracked file's references outside the repository. */
export function checkRepository(root: string): OutsideReference[] {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && !f.startsWith(VENDORED));
  const found: OutsideReference[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(resolve(root, file));
    } catch {
      continue; // deleted in the work tree, not yet in the index
    }
    if (bytes.subarray(0, 8000).includes(0)) continue; // binary
    found.push(...findOutsideReferences(file, bytes.toString('utf8')));
  }
  return found;
}

if (require.main === module) {
  const found = checkRepository(resolve(dirname(__filename), '..'));
  for (const r of found) console.error(`${r.file}:${r.line}: ${r.rule}: ${r.text}`);
  if (found.length > 0) {
    console.error('Point to files in the repository instead (docs/architecture.md for the design).');
    process.exit(1);
  }
  console.log('No tracked file points outside the repository.');
}
