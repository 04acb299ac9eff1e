/** iotb-validate choosing each device type's schema from the real iotb-registry config node. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { helper, nodeModule, type TestNode } from '../support/helper';
import { tempDir } from '../support/servers';

const registryNode = nodeModule('registry');
const validateNode = nodeModule('validate');

const thermo = {
  type: 'object',
  properties: { temperature: { type: 'number', maximum: 150 } },
  required: ['temperature'],
};
const meter = { type: 'object', properties: { kwh: { type: 'number', minimum: 0 } }, required: ['kwh'] };

describe('iotb-validate with the device registry', () => {
  const dir = tempDir('validate-registry');
  before(() => helper.startServer());
  after(async () => {
    await helper.stopServer();
    dir.remove();
  });
  afterEach(() => helper.unload());

  async function load(): Promise<{ v: TestNode; ok: TestNode; bad: TestNode; reg: TestNode }> {
    await helper.load(
      [registryNode, validateNode],
      [
        {
          id: 'reg',
          type: 'iotb-registry',
          file: join(dir.path, 'registry.json'),
          types: [
            { name: 'thermo', schema: JSON.stringify(thermo) },
            { name: 'meter', schema: JSON.stringify(meter) },
            { name: 'bare' },
          ],
        },
        { id: 'v', type: 'iotb-validate', schemaSource: 'type', registry: 'reg', wires: [['ok'], ['bad']] },
        { id: 'ok', type: 'helper' },
        { id: 'bad', type: 'helper' },
      ],
    );
    return {
      v: helper.getNode('v'),
      ok: helper.getNode('ok'),
      bad: helper.getNode('bad'),
      reg: helper.getNode('reg'),
    };
  }

  function send(
    n: { v: TestNode; ok: TestNode; bad: TestNode },
    msg: unknown,
  ): Promise<{ out: 0 | 1; msg: any }> {
    return new Promise((resolve) => {
      const onOk = (m: any): void => finish(0, m);
      const onBad = (m: any): void => finish(1, m);
      function finish(out: 0 | 1, m: any): void {
        n.ok.removeListener('input', onOk);
        n.bad.removeListener('input', onBad);
        resolve({ out, msg: m });
      }
      n.ok.on('input', onOk);
      n.bad.on('input', onBad);
      n.v.receive(msg);
    });
  }

  it('validates each reading against its device type schema', async () => {
    const n = await load();
    const t = { id: 't1', type: 'thermo' };
    const m = { id: 'm1', type: 'meter' };
    assert.equal((await send(n, { device: t, payload: '{"temperature":21}' })).out, 0);
    const hot = await send(n, { device: t, payload: '{"temperature":999}' });
    assert.equal(hot.msg.rejection.reason, 'temperature must be <= 150 (got 999)');
    // The meter's schema, not the thermometer's, applies to the meter.
    assert.equal((await send(n, { device: m, payload: '{"kwh":3.5}' })).out, 0);
    const negative = await send(n, { device: m, payload: '{"kwh":-1}' });
    assert.equal(negative.msg.rejection.reason, 'kwh must be >= 0 (got -1)');
    const wrongType = await send(n, { device: m, payload: '{"temperature":21}' });
    assert.equal(wrongType.msg.rejection.reason, 'kwh is required');
  });

  it('refuses readings of unknown types and types without a schema with NO_SCHEMA', async () => {
    const n = await load();
    const unknown = await send(n, { device: { id: 'x', type: 'toaster' }, payload: '{"a":1}' });
    assert.equal(unknown.msg.rejection.code, 'NO_SCHEMA');
    assert.equal(unknown.msg.rejection.reason, 'device type toaster is not in the registry');
    const bare = await send(n, { device: { id: 'x', type: 'bare' }, payload: '{"a":1}' });
    assert.equal(bare.msg.rejection.reason, 'device type bare has no telemetry schema');
    const anonymous = await send(n, { payload: '{"a":1}' });
    assert.equal(anonymous.msg.rejection.code, 'NO_SCHEMA');
  });

  it("uses a type's new schema as soon as the registry announces changed types", async () => {
    const n = await load();
    const t = { id: 't1', type: 'thermo' };
    assert.equal((await send(n, { device: t, payload: '{"temperature":120}' })).out, 0);
    n.reg.registry.putType({
      name: 'thermo',
      schema: { ...thermo, properties: { temperature: { type: 'number', maximum: 100 } } },
    });
    const after = await send(n, { device: t, payload: '{"temperature":120}' });
    assert.equal(after.msg.rejection.reason, 'temperature must be <= 100 (got 120)');
    n.reg.registry.putType({ name: 'toaster', schema: { type: 'object' } });
    assert.equal((await send(n, { device: { id: 'x', type: 'toaster' }, payload: '{"a":1}' })).out, 0);
  });
});
