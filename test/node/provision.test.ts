import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { tempDir } from '../support/servers';
import type { Registry } from '../../nodes/lib/registry/registry';

const nodes = [nodeModule('registry'), nodeModule('provision'), nodeModule('auth')];
const SECRET = 'node-test-registry-secret-0123456789abcdef';

describe('iotb-provision and iotb-auth nodes (msg driven)', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = tempDir('provision-node');
    helper.settings({ userDir: dir.path });
    await helper.load(
      nodes,
      [
        { id: 'reg', type: 'iotb-registry', file: 'devices.json', types: [{ name: 'thermo' }] },
        {
          id: 'prov',
          type: 'iotb-provision',
          registry: 'reg',
          operation: 'msg',
          wires: [['ok'], ['refused']],
        },
        { id: 'auth', type: 'iotb-auth', registry: 'reg', mode: 'bearer', wires: [['ok'], ['refused']] },
        { id: 'ok', type: 'helper' },
        { id: 'refused', type: 'helper' },
      ],
      { reg: { secret: SECRET } },
    );
  });
  afterEach(async () => {
    await helper.unload();
    dir.remove();
  });

  const call = async (
    msg: Record<string, unknown>,
    to = 'prov',
  ): Promise<{ out: 'ok' | 'refused'; msg: any }> => {
    const ok = nextMessage(helper.getNode('ok')).then((m) => ({ out: 'ok' as const, msg: m }));
    const refused = nextMessage(helper.getNode('refused')).then((m) => ({ out: 'refused' as const, msg: m }));
    helper.getNode(to).receive(msg);
    return Promise.race([ok, refused]);
  };

  it('creates, gets, lists, rotates, disables and removes devices by message, with status codes', async () => {
    const created = await call({
      operation: 'create',
      payload: { id: 'd1', type: 'thermo', meta: { floor: 1 } },
    });
    assert.equal(created.out, 'ok');
    assert.equal(created.msg.statusCode, 201);
    assert.match(created.msg.payload.token, /^iotbd_/);
    const got = await call({ operation: 'get', target: 'd1' });
    assert.equal(got.msg.statusCode, 200);
    assert.deepEqual(got.msg.payload.meta, { floor: 1 });
    assert.equal(got.msg.payload.token, undefined);
    const list = await call({ operation: 'list', req: { query: { limit: '1' } } });
    assert.deepEqual(
      { total: list.msg.payload.total, n: list.msg.payload.devices.length },
      { total: 1, n: 1 },
    );
    const rotated = await call({ operation: 'rotate', target: 'd1', payload: { graceS: 10 } });
    assert.equal(typeof rotated.msg.payload.previousExpiresAt, 'number');
    assert.equal(rotated.msg.payload.credentials.length, 2);
    const disabled = await call({ operation: 'disable', target: 'd1' });
    assert.equal(disabled.msg.payload.enabled, false);
    assert.equal((await call({ operation: 'remove', target: 'd1' })).msg.statusCode, 200);
    assert.equal((helper.getNode('reg').registry as Registry).getDevice('d1'), undefined);
  });

  it('refuses with 400/404/409 on the second output with msg.rejection', async () => {
    await call({ operation: 'create', payload: { id: 'd1', type: 'thermo' } });
    const cases: [Record<string, unknown>, number, string][] = [
      [{ operation: 'create', payload: { id: 'd1', type: 'thermo' } }, 409, 'CONFLICT'],
      [{ operation: 'get', target: 'nope' }, 404, 'NOT_FOUND'],
      [{ operation: 'create', payload: { type: 'thermo', id: 'a#b' } }, 400, 'INVALID'],
      [{ operation: 'create', payload: 'not an object' }, 400, 'INVALID'],
      [{ operation: 'list', req: { query: { limit: '5000' } } }, 400, 'INVALID'],
      [{ operation: 'explode' }, 400, 'INVALID'],
      [{ operation: 'register', payload: { type: 'thermo', key: 'iotbp_x', id: 'new-1' } }, 403, 'FORBIDDEN'],
    ];
    for (const [msg, status, code] of cases) {
      const r = await call(msg);
      assert.equal(r.out, 'refused', JSON.stringify(msg));
      assert.equal(r.msg.statusCode, status, JSON.stringify(msg));
      assert.equal(r.msg.rejection.stage, 'registry');
      assert.equal(r.msg.rejection.code, code);
      assert.equal(r.msg.payload.error, code);
    }
  });

  it('manages types, API keys and self-registration by message', async () => {
    assert.equal(
      (
        await call({
          operation: 'putType',
          payload: { name: 'valve', commands: { open: { timeoutMs: 1000 } } },
        })
      ).msg.statusCode,
      201,
    );
    assert.deepEqual(
      (await call({ operation: 'listTypes' })).msg.payload.map((t: any) => String(t.name)).sort(),
      ['thermo', 'valve'],
    );
    const key = (await call({ operation: 'createApiKey', payload: { name: 'ci' } })).msg.payload;
    assert.match(key.key, /^iotbk_/);
    assert.deepEqual(
      (await call({ operation: 'listApiKeys' })).msg.payload.map((k: any) => String(k.name)),
      ['ci'],
    );
    const prov = (
      await call({ operation: 'setProvisioning', payload: { type: 'valve', allow: ['valve-*'] } })
    ).msg.payload;
    const reg = await call({
      operation: 'register',
      payload: { type: 'valve', key: prov.key, id: 'valve-7' },
    });
    assert.equal(reg.msg.statusCode, 201);
    // the new device's token authenticates over HTTP through iotb-auth
    const authed = await call(
      {
        req: { headers: { authorization: `Bearer ${reg.msg.payload.token}` }, params: { id: 'valve-7' } },
        payload: {},
      },
      'auth',
    );
    assert.equal(authed.out, 'ok');
    assert.equal(authed.msg.device.id, 'valve-7');
    const refused = await call(
      { req: { headers: { authorization: 'Bearer nope' }, params: { id: 'valve-7' } }, payload: {} },
      'auth',
    );
    assert.equal(refused.out, 'refused');
    assert.equal(refused.msg.statusCode, 401);
    assert.equal(refused.msg.rejection.stage, 'auth');
  });
});
