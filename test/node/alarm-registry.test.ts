/** iotb-alarm with the real iotb-registry config node: alarm rules per device type, and a change of them. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { tempDir } from '../support/servers';

const registryNode = nodeModule('registry');
const alarmNode = nodeModule('alarm');

describe('iotb-alarm with rules from the device registry', () => {
  const dir = tempDir('alarm-registry');
  before(() => {
    helper.settings({ userDir: dir.path });
    return helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    helper.settings({});
    dir.remove();
  });
  afterEach(() => helper.unload());

  it("applies each type's rules to its devices only, and takes changed rules without losing alarms", async () => {
    await helper.load(
      [registryNode, alarmNode],
      [
        {
          id: 'reg',
          type: 'iotb-registry',
          file: join(dir.path, 'registry.json'),
          types: [
            {
              name: 'freezer',
              alarms: JSON.stringify([{ name: 'warm', kind: 'threshold', raise: 'temperature > -10' }]),
            },
            { name: 'oven' },
            {
              name: 'broken',
              alarms: JSON.stringify([{ name: 'x', kind: 'threshold', raise: 'temperature >' }]),
            },
          ],
        },
        { id: 'al', type: 'iotb-alarm', registry: 'reg', rules: [], wires: [['notes'], [], ['answers']] },
        { id: 'notes', type: 'helper' },
        { id: 'answers', type: 'helper' },
      ],
      { reg: { secret: 'a'.repeat(64) } },
    );
    const al = helper.getNode('al');
    const notes: any[] = [];
    helper.getNode('notes').on('input', (m) => notes.push(m));
    const list = async (): Promise<string[]> => {
      const answer = nextMessage(helper.getNode('answers'));
      al.receive({ topic: 'alarms/list', filter: { state: 'active' } });
      return ((await answer).payload as { device: string; rule: string }[]).map(
        (a) => `${a.device}/${a.rule}`,
      );
    };
    al.receive({ device: { id: 'f1', type: 'freezer' }, payload: { temperature: -5 } });
    al.receive({ device: { id: 'o1', type: 'oven' }, payload: { temperature: 200 } });
    assert.deepEqual(await list(), ['f1/warm']);
    const registryErrors = helper
      .log()
      .args.filter((a: any[]) => a[0].level === helper.log().ERROR && a[0].id === 'reg')
      .map((a: any[]) => String(a[0].msg));
    assert.equal(registryErrors.length, 1, 'the type with an invalid rule is refused by the registry');

    // The freezer rule changes: the active alarm stays, new readings are judged by the new rule.
    const registry = helper.getNode('reg').registry as { putType(t: unknown): unknown };
    registry.putType({
      name: 'freezer',
      alarms: [{ name: 'warm', kind: 'threshold', raise: 'temperature > 0' }],
    });
    al.receive({ device: { id: 'f2', type: 'freezer' }, payload: { temperature: -5 } });
    assert.deepEqual(await list(), ['f1/warm']);
    al.receive({ device: { id: 'f2', type: 'freezer' }, payload: { temperature: 3 } });
    al.receive({ device: { id: 'f1', type: 'freezer' }, payload: { temperature: 5 } });
    assert.deepEqual((await list()).sort(), ['f1/warm', 'f2/warm']);
    assert.deepEqual(
      notes.map((n) => `${String(n.payload.device)} ${String(n.payload.transition)}`),
      ['f1 raised', 'f2 raised'],
      'the alarm of f1 was not raised a second time',
    );
  });
});
