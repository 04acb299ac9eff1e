/**
 * iotb-quality in a real node-red process: the filter state survives a graceful restart and a crash (periodic
 * save), and an unreadable state file is survived with a warning. Readings enter over HTTP (http in → function
 * → iotb-quality → http response) so the test sees each outcome.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { eventually, tempDir } from '../support/servers';

const flows = [
  { id: 'tab', type: 'tab', label: 'quality' },
  { id: 'in', type: 'http in', z: 'tab', url: '/reading', method: 'post', wires: [['prep']] },
  {
    id: 'prep',
    type: 'function',
    z: 'tab',
    func: "msg.device = { id: msg.payload.device, type: 'sensor' };\nmsg.timestamp = msg.payload.ts;\nmsg.payload = msg.payload.reading;\nreturn msg;",
    outputs: 1,
    wires: [['q']],
  },
  {
    id: 'q',
    type: 'iotb-quality',
    z: 'tab',
    persist: true,
    saveIntervalS: 1,
    rules: [{ field: 't' }],
    wires: [['fmt'], ['fmt']],
  },
  {
    id: 'fmt',
    type: 'function',
    z: 'tab',
    func: 'msg.payload = { payload: msg.payload, quality: msg.quality || null };\nreturn msg;',
    outputs: 1,
    wires: [['res']],
  },
  { id: 'res', type: 'http response', z: 'tab' },
];

const T0 = 1_700_000_000_000;
const WINDOW = [20, 21, 20, 22, 20, 21, 20];

async function post(nr: NodeRedProcess, device: string, i: number, t: number): Promise<any> {
  const res = await fetch(`${nr.url}/reading`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ device, ts: T0 + i * 1000, reading: { t } }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

/** Polls (a foreign process writes it) until the state file is newer than `since`. */
async function savedAfter(file: string, since: number): Promise<void> {
  await eventually(
    `${file} to be saved`,
    () => Promise.resolve(existsSync(file) && statSync(file).mtimeMs > since ? true : undefined),
    10_000,
  );
}

describe('iotb-quality state in a real node-red process', () => {
  const dirs: { remove(): void }[] = [];
  const procs: NodeRedProcess[] = [];
  after(async () => {
    for (const p of procs) await p.stop();
    for (const d of dirs) d.remove();
  });

  it('keeps the Hampel window across a graceful restart and a crash', async () => {
    const nr = await startNodeRed({ flows });
    procs.push(nr);
    for (const [i, t] of WINDOW.entries()) assert.equal((await post(nr, 'a', i, t)).quality, null);
    await nr.restart(); // close handler saves

    const spike = await post(nr, 'a', 7, 95);
    assert.equal(spike.quality?.t?.check, 'spike', 'the window came back from disk');
    // Replaced by the restored window's level (20, 21, 20, 22, 20, 21, 20: the newest weighing most).
    assert.deepEqual([spike.payload.t.toFixed(3), spike.quality.t.raw], ['20.508', 95]);

    for (const [i, t] of WINDOW.entries()) await post(nr, 'b', i, t);
    const file = join(nr.userDir, 'iotb-quality', 'q.state');
    await savedAfter(file, Date.now());
    await nr.crashAndRestart(); // no close handler: only the periodic save counts
    assert.equal((await post(nr, 'b', 7, 95)).quality?.t?.check, 'spike');
  });

  it('survives an unreadable state file: warns, moves it aside, starts empty and keeps working', async () => {
    const dir = tempDir('quality-corrupt');
    dirs.push(dir);
    mkdirSync(join(dir.path, 'iotb-quality'));
    const file = join(dir.path, 'iotb-quality', 'q.state');
    writeFileSync(file, 'IOTB-QUALITY-STATE\n\x05\x00\x00\x00{"ver');
    const nr = await startNodeRed({ flows, userDir: dir.path });
    procs.push(nr);
    await nr.waitForOutput(/ignored unreadable state file .*q\.state/);
    assert.ok(existsSync(`${file}.corrupt`));
    const first = await post(nr, 'c', 0, 20);
    assert.deepEqual([first.payload.t, first.quality], [20, null]);
  });
});
