import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { helper, nodeModule } from '../support/helper';
import { tempDir } from '../support/servers';
import type { RegistryHolder } from '../../nodes/lib/registry/registry';

const registryNode = nodeModule('registry');
const SECRET = 'node-test-registry-secret-0123456789abcdef';

describe('iotb-registry config node', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(() => {
    dir = tempDir('registry-node');
    helper.settings({ userDir: dir.path });
  });
  afterEach(async () => {
    await helper.unload();
    dir.remove();
  });

  const flow = [
    {
      id: 'reg',
      type: 'iotb-registry',
      file: 'devices.json',
      rotationGraceS: 30,
      types: [
        {
          name: 'thermo',
          schema: '{"type":"object","properties":{"t":{"type":"number"}}}',
          commands: '{"reboot":{"timeoutMs":5000}}',
        },
        { name: 'broken', schema: '{not json' },
      ],
    },
  ];

  it('opens the registry in the user dir with the dialog types and the secret from credentials', async () => {
    await helper.load(registryNode, flow, { reg: { secret: SECRET, apiKey: 'operator-key-0123456789' } });
    const reg = (helper.getNode('reg') as unknown as RegistryHolder).registry!;
    assert.ok(reg, 'registry opened');
    assert.deepEqual(reg.getType('thermo')?.commands, { reboot: { timeoutMs: 5000 } });
    assert.equal(reg.getType('broken'), undefined, 'a type whose schema is not JSON is refused');
    assert.equal(reg.rotationGraceMs, 30_000);
    assert.equal(reg.verifyApiKey('operator-key-0123456789'), 'config');
    const { token } = reg.createDevice({ id: 'd1', type: 'thermo' });
    assert.ok(existsSync(join(dir.path, 'devices.json')));
    assert.equal(
      existsSync(join(dir.path, 'devices.json.secret')),
      false,
      'no secret file when credentials hold one',
    );

    // Redeploy: the old node closes (lock released), the new one opens the same state.
    await helper.unload();
    await helper.load(registryNode, flow, { reg: { secret: SECRET } });
    const again = (helper.getNode('reg') as unknown as RegistryHolder).registry!;
    assert.equal(again.verifyToken('d1', token).ok, true);
    assert.equal(again.verifyApiKey('operator-key-0123456789'), undefined);
  });

  it('generates a secret kept owner-only beside the state file when the credentials have none', async () => {
    await helper.load(registryNode, flow, {});
    const reg = (helper.getNode('reg') as unknown as RegistryHolder).registry!;
    const { token } = reg.createDevice({ id: 'd1', type: 'thermo' });
    const secretFile = join(dir.path, 'devices.json.secret');
    assert.match(readFileSync(secretFile, 'utf8'), /^[0-9a-f]{64}$/);
    assert.equal(statSync(secretFile).mode & 0o777, 0o600);
    await helper.unload();
    await helper.load(registryNode, flow, {});
    assert.equal(
      (helper.getNode('reg') as unknown as RegistryHolder).registry!.verifyToken('d1', token).ok,
      true,
    );
  });
});
