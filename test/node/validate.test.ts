import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { jsonTestSuiteDir } from '../support/corpus';
import { helper, nodeModuleWithMessages, receivedUntil, type TestNode } from '../support/helper';
import { tempDir } from '../support/servers';

const validateNode = nodeModuleWithMessages('validate');

const SCHEMA = {
  type: 'object',
  properties: {
    temperature: { type: 'number', minimum: -40, maximum: 150 },
    humidity: { type: 'number', minimum: 0, maximum: 100 },
  },
  required: ['temperature'],
};

/** A validate node wired to two helper nodes; `config` overrides the node's settings. */
async function load(
  config: Record<string, unknown> = {},
): Promise<{ v: TestNode; ok: TestNode; bad: TestNode }> {
  await helper.load(validateNode, [
    {
      id: 'v',
      type: 'iotb-validate',
      schemaSource: 'inline',
      schema: JSON.stringify(SCHEMA),
      wires: [['ok'], ['bad']],
      ...config,
    },
    { id: 'ok', type: 'helper' },
    { id: 'bad', type: 'helper' },
  ]);
  return { v: helper.getNode('v'), ok: helper.getNode('ok'), bad: helper.getNode('bad') };
}

/** Sends one payload and resolves with the single rejection it produced. */
async function rejectionOf(
  nodes: { v: TestNode; ok: TestNode; bad: TestNode },
  msg: Record<string, unknown>,
): Promise<any> {
  const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 1);
  nodes.v.receive(msg);
  const { ok, bad } = await out;
  assert.equal(ok.length, 0, `accepted: ${JSON.stringify(ok[0]?.payload)}`);
  return bad[0].rejection;
}

describe('iotb-validate node', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('passes a valid reading on out 1 in the pipeline shape, msg.device kept', async () => {
    const nodes = await load();
    const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 1);
    const ts = Date.now() - 1000;
    const device = { id: 'd1', type: 'thermo' };
    nodes.v.receive({
      topic: 'devices/d1/telemetry',
      device,
      payload: Buffer.from(JSON.stringify({ ts, temperature: 21.5 })),
    });
    const { ok } = await out;
    assert.deepEqual(ok[0].payload, { temperature: 21.5 });
    assert.equal(ok[0].timestamp, ts);
    assert.equal(ok[0].messageId, `d1:${ts}`);
    assert.deepEqual(ok[0].device, device);
    assert.equal(ok[0].topic, 'devices/d1/telemetry');
  });

  it('rejects with every code on out 2, with a reason', async () => {
    const nodes = await load();
    const now = Date.now();
    const cases: [string, unknown, Record<string, unknown>?][] = [
      ['PARSE', '{"temperature": }'],
      ['TOO_LARGE', Buffer.alloc(300_000, 0x20)],
      ['TOO_DEEP', '['.repeat(100_000) + ']'.repeat(100_000)],
      ['FORBIDDEN_KEY', '{"temperature":1,"__proto__":{"polluted":true}}'],
      ['NUMBER', '{"temperature":1e999}'],
      ['ENCODING', '{"temperature":1,"note":"\\udead"}'],
      ['NOT_OBJECT', '42'],
      ['EMPTY', '[]'],
      ['SCHEMA', '{"temperature":999}'],
      ['TIMESTAMP', JSON.stringify({ ts: Math.floor(now / 1000), temperature: 1 })],
      ['ID', '{"id":5,"temperature":1}'],
    ];
    for (const [code, payload] of cases) {
      const r = await rejectionOf(nodes, { payload });
      assert.equal(r.code, code, `${code}: ${r.reason}`);
      assert.equal(r.stage, 'validate');
      assert.ok(r.reason.length > 10, r.reason);
    }
    const schemaRejection = await rejectionOf(nodes, { payload: '{"temperature":999}' });
    assert.equal(schemaRejection.reason, 'temperature must be <= 150 (got 999)');
    assert.deepEqual(schemaRejection.details.violations[0], {
      path: '/temperature',
      message: 'temperature must be <= 150 (got 999)',
      expected: '<= 150',
      actual: 999,
    });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);

    // DUPLICATE_ID: one message id from the same device for two different readings.
    const device = { id: 'd1', type: 'thermo' };
    const first = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 1);
    nodes.v.receive({ device, payload: '{"id":"m-1","temperature":20}' });
    assert.equal((await first).ok.length, 1);
    const dup = await rejectionOf(nodes, { device, payload: '{"id":"m-1","temperature":21}' });
    assert.equal(dup.code, 'DUPLICATE_ID');
    assert.equal(dup.reason, 'reading id "m-1" was already accepted from this device for another reading');
  });

  it('takes a fractional duplicate window size as its whole part instead of failing to start', async () => {
    const nodes = await load({ dedupPerDevice: '2.7', dedupDevices: '0.5' });
    const device = { id: 'd1', type: 'thermo' };
    let temperature = 20;
    const send = async (id: string): Promise<string> => {
      const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 1);
      nodes.v.receive({ device, payload: `{"id":"${id}","temperature":${temperature}}` });
      const { ok, bad } = await out;
      return ok.length === 1 ? 'accepted' : (bad[0].rejection.code as string);
    };
    for (const id of ['m-1', 'm-2', 'm-3']) assert.equal(await send(id), 'accepted');
    temperature = 21;
    assert.equal(await send('m-3'), 'DUPLICATE_ID');
    assert.equal(await send('m-1'), 'accepted', 'a window of 2 ids has forgotten m-1');
  });

  it('reports an invalid schema at deploy, in the status and the log, and refuses readings with SCHEMA_INVALID', async () => {
    const nodes = await load({ schema: '{"type": "object", "properties": {"t": {"type": "numbr"}}}' });
    const statuses = (nodes.v.status.getCalls() as any[])
      .filter((c) => c.thisValue === nodes.v)
      .map((c): any => c.args[0]);
    assert.equal(statuses.at(-1).fill, 'red');
    assert.match(statuses.at(-1).text, /inline schema: the schema is invalid/);
    const errors = (helper.log().args as any[][]).filter(
      (a) => a[0].level === helper.log().ERROR && a[0].id === 'v',
    );
    assert.equal(errors.length, 1);
    assert.match(
      errors[0][0].msg,
      /schema problem: inline schema: the schema is invalid: data\/properties\/t\/type must be equal to one of the allowed values/,
    );
    const r = await rejectionOf(nodes, { payload: '{"t":1}' });
    assert.equal(r.code, 'SCHEMA_INVALID');
  });

  it('reports a schema that is not JSON at deploy with its position', async () => {
    const nodes = await load({ schema: '{"type": "object",, }' });
    const errors = (helper.log().args as any[][]).filter(
      (a) => a[0].level === helper.log().ERROR && a[0].id === 'v',
    );
    assert.match(errors[0][0].msg, /not valid JSON: .* at position 18/);
    assert.equal((await rejectionOf(nodes, { payload: '{}' })).code, 'SCHEMA_INVALID');
  });

  it('passes the good readings of a batch in one message and rejects each bad one with its index', async () => {
    const nodes = await load();
    const now = Date.now();
    const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 3);
    nodes.v.receive({
      device: { id: 'd7', type: 't' },
      payload: JSON.stringify([
        { ts: now - 3000, temperature: 20 },
        { ts: now - 2000, temperature: 999 },
        { ts: now - 1000, temperature: 22 },
        { ts: now + 3_600_000, temperature: 23 },
      ]),
    });
    const { ok, bad } = await out;
    assert.equal(ok.length, 1);
    assert.deepEqual(ok[0].payload, [{ temperature: 20 }, { temperature: 22 }]);
    assert.deepEqual(ok[0].timestamp, [now - 3000, now - 1000]);
    assert.deepEqual(ok[0].messageId, [`d7:${now - 3000}`, `d7:${now - 1000}`]);
    assert.deepEqual(
      bad.map((m): unknown[] => [
        m.rejection.details.index,
        m.rejection.code,
        m.payload.temperature,
        m.device.id,
      ]),
      [
        [1, 'SCHEMA', 999, 'd7'],
        [3, 'TIMESTAMP', 23, 'd7'],
      ],
    );
    assert.notEqual(bad[0], bad[1]);
  });

  it('splits a batch into one message per reading when configured', async () => {
    const nodes = await load({ split: true });
    const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 3);
    nodes.v.receive({ payload: [{ temperature: 1 }, { temperature: 2 }, { humidity: 3 }] });
    const { ok, bad } = await out;
    assert.deepEqual(
      ok.map((m): unknown => m.payload),
      [{ temperature: 1 }, { temperature: 2 }],
    );
    assert.equal(typeof ok[0].timestamp, 'number');
    assert.equal(bad[0].rejection.reason, 'reading 2: temperature is required');
  });

  it('applies coercion, defaults and unknown-field handling from its settings', async () => {
    const schema = JSON.stringify({
      type: 'object',
      properties: { t: { type: 'number' }, unit: { type: 'string', default: 'C' } },
    });
    const nodes = await load({ schema, coerce: true, useDefaults: true, unknown: 'reject' });
    const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 1);
    nodes.v.receive({ payload: '{"t":"21.5"}' });
    assert.deepEqual((await out).ok[0].payload, { t: 21.5, unit: 'C' });
    const r = await rejectionOf(nodes, { payload: '{"t":1,"x":2}' });
    assert.equal(r.reason, 'x is not a known field');
  });

  it('reads the schema from a file relative to the user dir, and from a message property', async () => {
    const dir = tempDir('validate-schema');
    try {
      writeFileSync(join(dir.path, 'thermo.json'), JSON.stringify(SCHEMA));
      const fromFile = await load({ schemaSource: 'file', schemaFile: join(dir.path, 'thermo.json') });
      assert.equal((await rejectionOf(fromFile, { payload: '{"temperature":151}' })).code, 'SCHEMA');
      await helper.unload();
      const missing = await load({ schemaSource: 'file', schemaFile: join(dir.path, 'nope.json') });
      assert.match((await rejectionOf(missing, { payload: '{}' })).reason, /ENOENT/);
    } finally {
      dir.remove();
    }
    await helper.unload();
    const fromMsg = await load({ schemaSource: 'msg', schemaProperty: 'spec.schema' });
    const r = await rejectionOf(fromMsg, {
      spec: { schema: { type: 'object', required: ['x'] } },
      payload: '{}',
    });
    assert.equal(r.reason, 'x is required');
    assert.equal((await rejectionOf(fromMsg, { payload: '{}' })).code, 'NO_SCHEMA');
  });

  it('refuses readings with NO_SCHEMA when the schema should come from a registry that is not configured', async () => {
    const nodes = await load({ schemaSource: 'type' });
    const r = await rejectionOf(nodes, {
      device: { id: 'd1', type: 'thermo' },
      payload: '{"temperature":1}',
    });
    assert.equal(r.code, 'NO_SCHEMA');
    assert.match(r.reason, /no device registry configured/);
  });

  it('takes every JSONTestSuite document as Buffer and string without crashing, refusing every n_ file', async () => {
    const nodes = await load({ schema: '{"type":"object"}' });
    const dir = jsonTestSuiteDir;
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      const bytes = readFileSync(join(dir, file));
      for (const payload of [bytes, bytes.toString('utf8')]) {
        const out = new Promise<{ ok: any[]; bad: any[] }>((resolve) => {
          // A batch may leave several messages; the last one leaves in the same tick as the first.
          const got = { ok: [] as any[], bad: [] as any[] };
          let timer: NodeJS.Immediate | undefined;
          const settle = (): void => {
            timer ??= setImmediate(() => resolve(got));
          };
          nodes.ok.on('input', (m: any) => {
            got.ok.push(m);
            settle();
          });
          nodes.bad.on('input', (m: any) => {
            got.bad.push(m);
            settle();
          });
        });
        nodes.v.receive({ payload });
        const { ok, bad } = await out;
        nodes.ok.removeAllListeners('input');
        nodes.bad.removeAllListeners('input');
        if (file.startsWith('n_')) {
          assert.equal(ok.length, 0, file);
          assert.ok(
            ['PARSE', 'TOO_DEEP'].includes(bad[0].rejection.code),
            `${file}: ${bad[0].rejection.code}`,
          );
        } else if (file.startsWith('y_')) {
          for (const m of bad) assert.ok(!['PARSE', 'TOO_DEEP'].includes(m.rejection.code), file);
        }
      }
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // Still healthy: a plain reading passes afterwards.
    const out = receivedUntil({ ok: nodes.ok, bad: nodes.bad }, 1);
    nodes.v.receive({ payload: '{"temperature":1}' });
    assert.equal((await out).ok.length, 1);
  });

  it('tests a sample payload for the editor without counting or sending anything', async () => {
    await load();
    const res = await helper
      .request()
      .post('/iotb-validate/test')
      .send({
        schema: JSON.stringify(SCHEMA),
        payload: '[{"temperature":999},{"temperature":5}]',
        config: {},
      })
      .expect(200);
    assert.equal(res.body.accepted.length, 1);
    assert.equal(res.body.rejected[0].rejection.reason, 'reading 0: temperature must be <= 150 (got 999)');
    const broken = await helper
      .request()
      .post('/iotb-validate/test')
      .send({ schema: '{', payload: '{}' })
      .expect(200);
    assert.match(broken.body.schemaError, /not valid JSON/);
  });
});
