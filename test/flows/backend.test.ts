import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { repoRoot } from '../support/servers';

describe('flows/backend.json in a real node-red process', () => {
  let nr: NodeRedProcess;
  before(async () => {
    nr = await startNodeRed({ flows: JSON.parse(readFileSync(join(repoRoot, 'flows', 'backend.json'), 'utf8')) });
  });
  after(() => nr.stop());

  it('serves Prometheus text on GET /metrics', async () => {
    const res = await fetch(`${nr.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(await res.text(), /# TYPE iotb_rejected_total counter/);
  });
});
