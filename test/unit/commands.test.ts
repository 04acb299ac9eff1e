import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CommandLog } from '../../nodes/lib/commands/command-log';
import { stateFilter } from '../../nodes/lib/commands/queries';
import { RequestValidator } from '../../nodes/lib/commands/request';
import {
  canTransition,
  IllegalTransitionError,
  isFinal,
  transition,
  type CommandRecord,
  type CommandState,
} from '../../nodes/lib/commands/states';
import { RejectionError } from '../../nodes/lib/rejection';
import { thermostatDirectory } from '../support/memory-directory';
import { tempDir } from '../support/servers';

const ALL: CommandState[] = [
  'QUEUED',
  'SENT',
  'DELIVERED',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'TIMED_OUT',
  'EXPIRED',
  'CANCELED',
];
const FINAL = ['SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'EXPIRED', 'CANCELED'];

function record(state: CommandState = 'QUEUED'): CommandRecord {
  return {
    id: 'c1',
    deviceId: 'd1',
    name: 'reboot',
    params: {},
    state,
    createdAt: 1,
    expiresAt: 2,
    timeoutMs: 1,
    attempts: 0,
    history: [{ state, at: 1 }],
  };
}

describe('command lifecycle', () => {
  it('final states have no way out; EXPIRED and CANCELED only from QUEUED (never after sending)', () => {
    for (const from of ALL) {
      assert.equal(isFinal(from), FINAL.includes(from));
      for (const to of ALL)
        if (isFinal(from)) assert.equal(canTransition(from, to), false, `${from} -> ${to}`);
    }
    for (const from of ALL)
      for (const to of ['EXPIRED', 'CANCELED'] as const)
        assert.equal(canTransition(from, to), from === 'QUEUED', `${from} -> ${to}`);
    assert.equal(canTransition('QUEUED', 'SUCCEEDED'), false, 'an unsent command cannot succeed');
    assert.equal(canTransition('DELIVERED', 'SENT'), true, 'the one re-send after a restart');
  });

  it('transition records history and throws on an illegal step', () => {
    const r = record();
    transition(r, 'SENT', 5);
    transition(r, 'SUCCEEDED', 6);
    assert.deepEqual(r.history, [
      { state: 'QUEUED', at: 1 },
      { state: 'SENT', at: 5 },
      { state: 'SUCCEEDED', at: 6 },
    ]);
    assert.throws(() => transition(r, 'FAILED', 7), IllegalTransitionError);
    assert.equal(r.state, 'SUCCEEDED');
  });
});

describe('command log', () => {
  it('replays the last record per command and the switches, skipping a torn last line', () => {
    const dir = tempDir('command-log');
    try {
      const file = join(dir.path, 'c.jsonl');
      const log = new CommandLog(file);
      const r = record();
      log.putCommand(r);
      transition(r, 'SENT', 2);
      log.putCommand(r);
      log.putKillSwitch({ on: true, at: 3, reason: 'x' });
      log.putSafeMode('d1', { on: true, at: 4 });
      log.putSafeMode('d2', { on: true, at: 4 });
      log.putSafeMode('d2', { on: false, at: 5 });
      log.close();
      appendFileSync(file, '{"t":"c","r":{"id":"c2"'); // a crash mid-write
      const saved = CommandLog.read(file);
      assert.equal(saved.commands.size, 1);
      assert.equal(saved.commands.get('c1')?.state, 'SENT');
      assert.equal(saved.control.killSwitch.on, true);
      assert.deepEqual([...saved.control.safeMode.keys()], ['d1']);

      const again = new CommandLog(file);
      again.compact(saved.commands.values(), saved.control);
      again.close();
      const compacted = CommandLog.read(file);
      assert.equal(compacted.lines, 3);
      assert.equal(compacted.commands.get('c1')?.state, 'SENT');
    } finally {
      dir.remove();
    }
  });
});

describe('command request validation', () => {
  const directory = thermostatDirectory('d1');
  directory.addDevice('off', 'thermostat', false);
  const v = new RequestValidator(directory);
  const defaults = { timeoutMs: 1000, ttlMs: 5000 };
  const code = (req: Record<string, unknown>): string => {
    try {
      v.validate({ deviceId: 'd1', name: 'reboot', ...req }, defaults);
      return 'OK';
    } catch (err) {
      return (err as RejectionError).rejection.code;
    }
  };

  it('accepts a valid request with defaults and a generated id', () => {
    const c = v.validate({ deviceId: 'd1', name: 'set-interval', params: { intervalMs: 5 } }, defaults);
    assert.equal(c.timeoutMs, 1000);
    assert.equal(c.ttlMs, 5000);
    assert.match(c.id, /^[0-9a-f-]{36}$/);
  });

  it('refuses each kind of bad request with its own code', () => {
    assert.equal(code({ deviceId: 'nobody' }), 'UNKNOWN_DEVICE');
    assert.equal(code({ deviceId: 'off' }), 'DEVICE_DISABLED');
    assert.equal(code({ deviceId: 'a/b' }), 'INVALID_DEVICE_ID');
    assert.equal(code({ name: 'format' }), 'COMMAND_NOT_ALLOWED');
    assert.equal(code({ name: '../x' }), 'INVALID_NAME');
    // The registry's name alphabet includes ':', so such a name is judged by the type's command list, not refused.
    assert.equal(code({ name: 'ota:apply' }), 'COMMAND_NOT_ALLOWED');
    assert.equal(code({ name: 'set-interval', params: { intervalMs: -1 } }), 'INVALID_PARAMS');
    assert.equal(code({ name: 'set-interval', params: { intervalMs: 1, extra: 1 } }), 'INVALID_PARAMS');
    assert.equal(code({ params: [] }), 'INVALID_PARAMS');
    assert.equal(code({ params: { blob: 'x'.repeat(70_000) } }), 'PARAMS_TOO_LARGE');
    assert.equal(code({ id: 'has space' }), 'INVALID_ID');
    assert.equal(code({ timeoutMs: 0 }), 'INVALID_TIMEOUTMS');
    assert.equal(code({ ttlMs: 8 * 24 * 3600_000 }), 'INVALID_TTLMS');
    assert.equal(code({ timeoutMs: '250' }), 'OK');
  });
});

describe('command list filter (?state=)', () => {
  it('pending by default; final, all, and states separated by commas', () => {
    const accepted = (value: unknown): string[] =>
      (['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED', 'CANCELED'] as const).filter((s) =>
        stateFilter(value).accepts(s),
      );
    assert.deepEqual(accepted(undefined), ['QUEUED', 'SENT', 'DELIVERED']);
    assert.deepEqual(accepted(''), ['QUEUED', 'SENT', 'DELIVERED']);
    assert.deepEqual(accepted('final'), ['SUCCEEDED', 'CANCELED']);
    assert.equal(accepted('all').length, 5);
    assert.deepEqual(accepted('SENT,CANCELED'), ['SENT', 'CANCELED']);
  });

  it('refuses anything else with INVALID_QUERY, including inherited property names and repeated parameters', () => {
    for (const bad of [
      'queued',
      'QUEUED,',
      'constructor',
      '__proto__',
      ['QUEUED', 'SENT'],
      'x'.repeat(300),
    ]) {
      assert.throws(
        () => stateFilter(bad),
        (err: unknown) => err instanceof RejectionError && err.rejection.code === 'INVALID_QUERY',
        String(bad),
      );
    }
  });
});
