/**
 * Public test corpora vendored unchanged under test/fixtures/third-party/ (origin, commit and licence of each in
 * its README): hostile and edge-case input that no hand-written test would think of.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './servers';

const thirdParty = join(repoRoot, 'test', 'fixtures', 'third-party');

/** JSONTestSuite `test_parsing`: `y_` must parse, `n_` must be refused, `i_` implementation-defined. */
export const jsonTestSuiteDir = join(thirdParty, 'JSONTestSuite', 'test_parsing');

/** The line-protocol corpus: `encode` and `decode` cases with expected results or errors. */
export const lineProtocolCorpusFile = join(thirdParty, 'line-protocol-corpus', 'corpus.json');

/** The big list of naughty strings: unicode, injection, control characters, huge numbers. */
export function naughtyStrings(): string[] {
  return JSON.parse(
    readFileSync(join(thirdParty, 'big-list-of-naughty-strings', 'blns.json'), 'utf8'),
  ) as string[];
}
