/**
 * The node glue stays one family: no block of six or more lines repeated between node glue files
 * (nodes/<node>/*.ts; blank, comment-only and import lines do not count), and no `as unknown as` anywhere
 * under nodes/ (a value that needs it is typed wrongly somewhere).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/servers';

const nodesDir = join(repoRoot, 'nodes');
const BLOCK = 6;
function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFilesUnder(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** The glue files: nodes/<node>/*.ts, not nodes/lib (the rules) or nodes/glue (the kit itself). */
const glueFiles = readdirSync(nodesDir)
  .filter((name) => name !== 'lib' && name !== 'glue' && statSync(join(nodesDir, name)).isDirectory())
  .flatMap((name) =>
    readdirSync(join(nodesDir, name))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(nodesDir, name, f)),
  );

/** The lines that count, trimmed, with their line numbers: no blank, comment-only or import lines. */
function codeLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let inImport = false;
  let inComment = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (inComment) {
      if (line.includes('*/')) inComment = false;
      return;
    }
    if (inImport) {
      if (/from\s+['"][^'"]+['"];?$/.test(line)) inImport = false;
      return;
    }
    if (line === '' || line.startsWith('//')) return;
    if (line.startsWith('/*')) {
      if (!line.includes('*/')) inComment = true;
      return;
    }
    if (/^(import|export)\b.*\bfrom\s+['"]/.test(line) || /^import\s+['"]/.test(line)) return;
    if (/^import\b/.test(line)) {
      inImport = true;
      return;
    }
    out.push({ line: i + 1, text: line });
  });
  return out;
}

/** Every block of `size` counted lines that occurs in two different files (or twice in one file set apart). */
function repeatedBlocks(files: readonly string[], size = BLOCK): string[] {
  const seen = new Map<string, string>();
  const found: string[] = [];
  for (const file of files) {
    const lines = codeLines(readFileSync(file, 'utf8'));
    for (let i = 0; i + size <= lines.length; i++) {
      const key = lines
        .slice(i, i + size)
        .map((l) => l.text)
        .join('\n');
      const where = `${relative(repoRoot, file)}:${lines[i].line}`;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, where);
      else if (!first.startsWith(`${relative(repoRoot, file)}:`))
        found.push(`${first} and ${where}:\n${key}`);
    }
  }
  return found;
}

describe('node glue checks', () => {
  it('finds a block repeated between two files (the check itself works)', () => {
    const lines = [
      'const a = 1;',
      'const b = 2;',
      'const c = 3;',
      'const d = 4;',
      'const e = 5;',
      'const f = 6;',
    ];
    assert.equal(codeLines(['import {', '  x,', "} from 'y';", ...lines].join('\n')).length, BLOCK);
    assert.deepEqual(codeLines(['/**', ' * a comment', ' */', '// another', '', 'const a = 1;'].join('\n')), [
      { line: 6, text: 'const a = 1;' },
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'glue-check-'));
    try {
      writeFileSync(join(dir, 'a.ts'), ['// one', ...lines].join('\n'));
      writeFileSync(join(dir, 'b.ts'), ['let x = 0;', '', ...lines, 'x++;'].join('\n'));
      writeFileSync(join(dir, 'c.ts'), lines.slice(1).join('\n'));
      const files = ['a.ts', 'b.ts', 'c.ts'].map((f) => join(dir, f));
      assert.equal(repeatedBlocks(files).length, 1, 'a.ts and b.ts share six lines; c.ts only five');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no block of six or more lines is repeated between node glue files', () => {
    assert.ok(glueFiles.length >= 20, `found ${glueFiles.length} glue files`);
    assert.deepEqual(repeatedBlocks(glueFiles), []);
  });

  it('nothing under nodes/ is cast through unknown', () => {
    const casts: Record<string, number> = {};
    for (const file of tsFilesUnder(nodesDir)) {
      const n = readFileSync(file, 'utf8').split(/\bas unknown as\b/).length - 1;
      if (n > 0) casts[relative(repoRoot, file)] = n;
    }
    assert.deepEqual(casts, {}, 'casts through unknown per file');
  });
});
