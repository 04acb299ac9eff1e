/**
 * iotb-alarm in a real node-red process killed with SIGKILL: active alarms come back active with their ids,
 * are not announced again, and still clear when the condition clears. Readings enter over HTTP; every
 * transition is logged by a debug node (console), so the test reads the announcements from each process's output.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { eventually } from '../support/servers';

const flows = [
  { id: 'tab', type: 'tab', label: 'alarms' },
  { id: 'in', type: 'http in', z: 'tab', url: '/reading', method: 'post', wires: [['prep']] },
  {
    id: 'prep',
    type: 'change',
    z: 'tab',
    rules: [
      { t: 'set', p: 'device', pt: 'msg', to: '{"id": payload.device, "type": "freezer"}', tot: 'jsonata' },
      { t: 'set', p: 'payload', pt: 'msg', to: 'payload.reading', tot: 'msg' },
    ],
    wires: [['alarm', 'ok']],
  },
  {
    id: 'ok',
    type: 'change',
    z: 'tab',
    rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'ok', tot: 'str' }],
    wires: [['res']],
  },
  { id: 'list', type: 'http in', z: 'tab', url: '/alarms', method: 'get', wires: [['ask']] },
  {
    id: 'ask',
    type: 'change',
    z: 'tab',
    rules: [{ t: 'set', p: 'topic', pt: 'msg', to: 'alarms/list', tot: 'str' }],
    wires: [['alarm']],
  },
  {
    id: 'alarm',
    type: 'iotb-alarm',
    z: 'tab',
    rules: [
      {
        name: 'warm',
        kind: 'threshold',
        severity: 'critical',
        raise: 'temperature > -10',
        clear: 'temperature < -12',
      },
    ],
    tickS: 1,
    persist: true,
    wires: [['say'], [], ['res']],
  },
  {
    id: 'say',
    type: 'change',
    z: 'tab',
    rules: [
      {
        t: 'set',
        p: 'payload',
        pt: 'msg',
        to: '"ALARM " & payload.transition & " " & payload.device & " " & payload.id',
        tot: 'jsonata',
      },
    ],
    wires: [['log']],
  },
  { id: 'log', type: 'debug', z: 'tab', active: true, tosidebar: false, console: true, complete: 'payload' },
  { id: 'res', type: 'http response', z: 'tab' },
];

async function reading(nr: NodeRedProcess, device: string, temperature: number): Promise<void> {
  const res = await fetch(`${nr.url}/reading`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ device, reading: { temperature } }),
  });
  assert.equal(res.status, 200);
}

async function alarms(nr: NodeRedProcess): Promise<any[]> {
  const res = await fetch(`${nr.url}/alarms`);
  assert.equal(res.status, 200);
  return (await res.json()) as any[];
}

const announced = (nr: NodeRedProcess): string[] => nr.proc.output().match(/ALARM \w+ \S+ \d+/g) ?? [];

describe('iotb-alarm across a crash of node-red', () => {
  let nr: NodeRedProcess | undefined;
  after(() => nr?.stop());

  it('keeps active alarms after kill -9, does not announce them again, and clears them later', async () => {
    nr = await startNodeRed({ flows });
    await reading(nr, 'f1', -5);
    await reading(nr, 'f2', -4);
    await reading(nr, 'f3', -20);
    const running = nr;
    await eventually('two raises logged', () =>
      Promise.resolve(announced(running).length === 2 ? true : undefined),
    );
    assert.deepEqual(announced(nr).sort(), ['ALARM raised f1 1', 'ALARM raised f2 2']);
    assert.equal((await alarms(nr)).length, 2);

    await nr.crashAndRestart();
    const back = await alarms(nr);
    assert.deepEqual(back.map((a) => `${a.id} ${a.device} ${a.state}`).sort(), [
      '1 f1 ACTIVE_UNACK',
      '2 f2 ACTIVE_UNACK',
    ]);
    // Still warm after the restart: the restored alarm holds its slot, nothing new is raised.
    await reading(nr, 'f1', -3);
    await reading(nr, 'f2', -3);
    await reading(nr, 'f2', -12.5);
    const later = await alarms(nr);
    assert.deepEqual(later.map((a) => `${a.id} ${a.state}`).sort(), ['1 ACTIVE_UNACK', '2 CLEARED_UNACK']);
    const restarted = nr;
    await eventually('the clear logged', () =>
      Promise.resolve(announced(restarted).length ? true : undefined),
    );
    assert.deepEqual(announced(nr), ['ALARM cleared f2 2'], 'no raise announced again after the crash');
  });
});
