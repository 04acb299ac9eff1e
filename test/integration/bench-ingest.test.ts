/**
 * The ingest benchmark's harness (bench/support/ingest-run.ts) measures what it says on every case: each
 * composition deploys in a real node-red process, the load generator's readings are all stored and counted
 * exactly, and the figures are filled in. Rates themselves are not asserted: timing belongs in bench/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IngestCase } from '../../bench/support/ingest-flows';
import { runCase, startIngestBench, type IngestBench, type Workload } from '../../bench/support/ingest-run';

const workload: Workload = {
  devices: 5,
  burst: 300,
  rate: 100,
  steadyS: 1,
  stallS: 20,
  externalIngress: 'mqtt-in',
  generators: 2,
};

describe('ingest benchmark harness: stock, external and embedded compositions', () => {
  let bench: IngestBench;
  before(async () => {
    bench = await startIngestBench(workload.devices);
  });
  after(async () => bench?.stop());

  for (const which of ['stock', 'external', 'embedded'] as IngestCase[]) {
    it(`${which}: stores every reading of the burst and the steady phase, counted exactly`, async () => {
      const r = await runCase(which, 0, bench, workload);
      assert.equal(r.case, which);
      assert.equal(r.expected, workload.burst + workload.rate * workload.steadyS);
      assert.equal(r.stored, r.expected);
      assert.ok(r.burstRate > 0 && Number.isFinite(r.burstRate));
      assert.ok(r.peakRssMb > 30, `peak RSS ${r.peakRssMb} MiB of a node-red process`);
      assert.ok(r.burstCpuUsPerMsg > 0 && r.steadyCpuUsPerMsg > 0);
      assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms);
      assert.ok(r.generators === 2 && r.generatorCores > 0 && r.generatorMaxCores <= r.generatorCores);
      assert.ok(r.steadyBackendCpuUsPerMsg >= r.steadyCpuUsPerMsg);
    });
  }
});
