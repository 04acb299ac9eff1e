/** Device type checking (nodes/lib/registry/device-types.ts), without a registry or a store around it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceTypes } from '../../nodes/lib/registry/device-types';
import { RegistryError } from '../../nodes/lib/registry/errors';

/** The refusal's code and message, or 'accepted'. */
function verdict(types: DeviceTypes, type: unknown): string {
  try {
    types.check(type);
    return 'accepted';
  } catch (err) {
    assert.ok(err instanceof RegistryError, String(err));
    return `${err.code}: ${err.message}`;
  }
}

describe('device types', () => {
  it('returns a clean copy: known properties only, timeouts as numbers', () => {
    const clean = new DeviceTypes().check({
      name: 'thermo',
      schema: { type: 'object' },
      commands: { reboot: null, 'set:interval': { params: { type: 'object' }, timeoutMs: '5000', extra: 1 } },
      owner: 'someone',
    });
    assert.deepEqual(clean, {
      name: 'thermo',
      schema: { type: 'object' },
      commands: { reboot: {}, 'set:interval': { params: { type: 'object' }, timeoutMs: 5000 } },
    });
  });

  it('gives type and command names the device id alphabet, at most 64 characters', () => {
    const types = new DeviceTypes();
    assert.equal(verdict(types, { name: 'x'.repeat(64) }), 'accepted');
    for (const name of ['x'.repeat(65), 'a/b', '_a', 'a b', '', 7])
      assert.match(
        verdict(types, { name }),
        /^INVALID: device type name .* is not valid: use 1-64 of/,
        String(name),
      );
    assert.equal(verdict(types, { name: 't', commands: { ['c'.repeat(64)]: {} } }), 'accepted');
    for (const cmd of ['c'.repeat(65), 'a/b', '-go'])
      assert.match(
        verdict(types, { name: 't', commands: { [cmd]: {} } }),
        /^INVALID: type t: command name/,
        cmd,
      );
  });

  it('refuses schemas that do not compile and malformed parts, naming the part', () => {
    const types = new DeviceTypes();
    const cases: [unknown, RegExp][] = [
      [null, /^INVALID: a device type must be an object/],
      [[], /^INVALID: a device type must be an object/],
      [{ name: 't', schema: 'object' }, /^INVALID: type t: schema must be a JSON Schema object$/],
      [{ name: 't', schema: { type: 'nonsense' } }, /^INVALID: type t: telemetry schema does not compile: /],
      [{ name: 't', commands: [] }, /^INVALID: type t: commands must be an object/],
      [{ name: 't', commands: { go: 1 } }, /^INVALID: type t: command go must be an object/],
      [
        { name: 't', commands: { go: { params: [] } } },
        /^INVALID: type t: command go params must be a JSON Schema/,
      ],
      [
        { name: 't', commands: { go: { params: { minimum: 'x' } } } },
        /^INVALID: type t: command go params schema does not compile: /,
      ],
      [
        { name: 't', commands: { go: { timeoutMs: 1.5 } } },
        /^INVALID: type t: command go timeoutMs must be a positive/,
      ],
      [{ name: 't', alarms: {} }, /^INVALID: type t: alarms: alarm rules must be a list$/],
    ];
    for (const [type, expected] of cases) assert.match(verdict(types, type), expected, JSON.stringify(type));
  });

  it('compiles a schema with an $id again for another type (nothing stays in the compiler cache)', () => {
    const types = new DeviceTypes();
    const schema = { $id: 'https://example.test/reading', type: 'object' };
    assert.equal(verdict(types, { name: 'a', schema }), 'accepted');
    assert.equal(verdict(types, { name: 'b', schema }), 'accepted', 'the same $id compiles again');
  });

  it('holds the types by name; a device may only name one that exists', () => {
    const types = new DeviceTypes();
    types.set(types.check({ name: 'thermo' }));
    assert.deepEqual(types.get('thermo'), { name: 'thermo' });
    assert.deepEqual(
      types.list().map((t) => t.name),
      ['thermo'],
    );
    types.require('thermo');
    assert.throws(() => types.require('meter'), /device type "meter" does not exist/);
    assert.throws(() => types.require(undefined), /device type "undefined" does not exist/);
    types.delete('thermo');
    assert.equal(types.has('thermo'), false);
  });
});
