/** The check that keeps the repository standalone: what it flags, and what it must leave alone. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRepository, findOutsideReferences } from '../../scripts/check-standalone';
import { repoRoot } from '../support/servers';

const rules = (file: string, text: string): string[] => findOutsideReferences(file, text).map((r) => r.rule);

// The examples are assembled from parts so that this file itself holds none of what the check flags.
const up = '..';
const sibling = `${up}/shared`;
const designDoc = ['DESIGN', 'md'].join('.');
const abs = (...parts: string[]): string => ['', ...parts].join('/');

describe('check-standalone', () => {
  it('flags folders beside the checkout, in a path and as join() segments', () => {
    assert.equal(rules('test/a.test.ts', `const dir = '${sibling}/corpus';`).length, 1);
    assert.equal(rules('test/a.test.ts', `join(repoRoot, '${up}', 'shared', 'corpus')`).length, 2);
    assert.deepEqual(rules('test/a.test.ts', `resolve(repoRoot, "${up}", "data")`), [
      'joins ".." onto the repository root',
    ]);
  });

  it('flags a design document that is not in the repository, and absolute paths of one machine', () => {
    assert.deepEqual(rules('nodes/lib/x.ts', `/** Ids (${designDoc}): safe */`), [
      'a design document that is not in the repository',
    ]);
    for (const text of [
      `see ${abs('work', 'x')}`,
      `cwd: '${abs('home', 'dev', 'project')}'`,
      `(${abs('root', '.cache')})`,
    ])
      assert.deepEqual(rules('docs/x.md', text), ["one machine's absolute path"], text);
  });

  it('flags Markdown links that climb above the repository root, with the line they are on', () => {
    const found = findOutsideReferences('docs/x.md', `intro\nsee [the design](${up}/${up}/notes.md#ids)\n`);
    assert.deepEqual(
      found.map((r) => [r.line, r.rule]),
      [[2, 'a Markdown link outside the repository']],
    );
    assert.equal(rules('README.md', `[x](${abs('etc', 'passwd')})`).length, 1);
  });

  it('leaves legitimate text alone', () => {
    const legitimate = [
      'a later deployment can move it to a shared store',
      "import { repoRoot } from '../support/servers';",
      "resolve(__dirname, '..', '..')",
      'https://example.com/work/home/x and http://127.0.0.1:1880/root/x',
      'tests write under /tmp/ and ~/.node-red/',
      'the design is in docs/architecture.md',
      '[README](../README.md), [spool](storage-spool.md#on-disk), [site](https://nodered.org/docs/)',
    ];
    for (const text of legitimate) assert.deepEqual(rules('docs/x.md', text), [], text);
  });

  it('finds nothing in the tracked files beyond the files awaiting rewording', () => {
    const outside = checkRepository(repoRoot);
    assert.deepEqual(outside, []);
  });
});
