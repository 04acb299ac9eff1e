/**
 * The node glue kit (nodes/glue) in a real Node-RED runtime: the missing-config policy, listeners, timers
 * and HTTP handlers undone on close (in reverse order, async steps awaited), the throttled status, state
 * files and their migration from the old names, and the number-setting parser.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { NodeGlue } from '../../nodes/glue/glue';
import { numberSetting } from '../../nodes/glue/settings';
import { recordingOwner } from '../support/acks';
import { helper, nextMessage } from '../support/helper';
import { eventually, tempDir } from '../support/servers';

/** What the test nodes did, for the assertions. */
const seen = { closed: [] as string[], ticks: 0, stateFile: '', renders: 0 };
/** The "registry" the test config node holds: a plain emitter, so listeners can be counted. */
const registry = new EventEmitter();
/** Node-RED's httpNode app of the test runtime (the helper's request() goes to the admin app). */
let httpNode: RequestListener | undefined;

/** GET `path` from the httpNode app, served on a loopback port for the one request. */
async function get(path: string): Promise<{ status: number; text: string }> {
  const server = createServer(httpNode).listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);
    return { status: res.status, text: await res.text() };
  } finally {
    server.close();
  }
}

/** A config node that holds `registry` unless `broken`, and a node that uses it through the kit. */
function kitNodes(RED: any): void {
  httpNode = RED.httpNode;
  RED.nodes.registerType('kit-config', function (this: any, config: any) {
    RED.nodes.createNode(this, config);
    if (config.broken) this.configProblem = 'URL is empty';
    else this.registry = registry;
  });
  RED.nodes.registerType('kit-node', function (this: any, config: any) {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const rejected = config.rejected ? { stage: 'registry' as const, outputs: 2 } : undefined;
    const reg = glue.requireConfig('registry', config.registry, rejected);
    if (!reg) return;
    glue.onClose(() => {
      seen.closed.push('first registered');
    });
    glue.onClose(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      seen.closed.push('second registered (async)');
    });
    glue.listen(reg)('types', () => status.update());
    glue.every(5, () => seen.ticks++);
    const status = glue.status(() => {
      seen.renders++;
      return { fill: 'green', shape: 'dot', key: 'status.count', vars: { n: seen.renders } };
    }, 200);
    seen.stateFile = glue.stateFile('kit', '.json', [glue.userFile(`kit-${this.id as string}.json`)]);
    glue.httpMiddleware((req, res, next) => {
      if (req.url === '/kit-test') res.end('served');
      else next();
    });
    this.on('input', (msg: any, send: any, done: any) => {
      send([msg, null]);
      done();
    });
  });
}

/** Every status a node has shown since the flow was loaded (the helper spies on Node.prototype.status). */
function statuses(id: string): unknown[] {
  const calls: any[] = (helper as any)._NodePrototype.status.getCalls();
  return calls.filter((c) => c.thisValue.id === id).map((c): unknown => c.args[0]);
}

function errorLines(): string[] {
  const calls: any[][] = helper.log().args;
  return calls.filter((a) => a[0].level === helper.log().ERROR).map((a) => String(a[0].msg));
}

describe('node glue kit (nodes/glue)', () => {
  const userDir = tempDir('glue-kit');
  before(async () => {
    helper.settings({ userDir: userDir.path });
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    helper.settings({});
    userDir.remove();
  });
  afterEach(() => helper.unload());

  const flow = (node: Record<string, unknown>, config: Record<string, unknown> = {}): unknown[] => [
    { id: 'cfg', type: 'kit-config', ...config },
    { id: 'n', type: 'kit-node', registry: 'cfg', wires: [['ok'], ['bad']], ...node },
    { id: 'ok', type: 'helper' },
    { id: 'bad', type: 'helper' },
  ];

  it('a missing config node: red ring and one log line with the catalog text; each message fails with it', async () => {
    await helper.load(kitNodes, flow({ registry: 'nowhere' }));
    const n = helper.getNode('n');
    assert.deepEqual(statuses('n'), [{ fill: 'red', shape: 'ring', text: 'kit-node.config.noRegistry' }]);
    assert.deepEqual(errorLines(), ['kit-node.config.noRegistry']);
    const failed = new Promise<any>((resolve) =>
      n.on('call:error', (call: any) => {
        if (call.args[1]) resolve(call); // the message's error, not the deploy-time log line
      }),
    );
    n.receive({ payload: 1 });
    const call = await failed;
    assert.match(String(call.args[0]), /^(Error: )?kit-node\.config\.noRegistry$/);
    assert.equal(call.args[1].payload, 1, 'reported with the message, so a Catch node gets it');
  });

  it('an invalid config node: its problem in the status, not logged again; a judging node refuses on its rejected output', async () => {
    await helper.load(kitNodes, flow({ rejected: true }, { broken: true }));
    assert.deepEqual(statuses('n'), [
      { fill: 'red', shape: 'ring', text: 'kit-node.config.registryInvalid' },
    ]);
    assert.deepEqual(errorLines(), [], 'the config node says it, once for every node that uses it');
    const owner = recordingOwner();
    const ackId = owner.hold();
    const refused = nextMessage(helper.getNode('bad'));
    helper.getNode('n').receive({ payload: 1, ackId });
    const msg = await refused;
    assert.equal(msg.rejection.code, 'CONFIG_INVALID');
    assert.equal(msg.rejection.reason, 'kit-node.config.registryInvalid');
    assert.deepEqual(owner.seen, [[ackId, 'failed']], 'nothing was stored: the source must not acknowledge');
    owner.close();
  });

  it('close undoes listeners, timers and HTTP handlers, in reverse order, awaiting async steps', async () => {
    seen.closed = [];
    await helper.load(kitNodes, flow({}));
    assert.equal(registry.listenerCount('types'), 1);
    await eventually('timer ticks', () => (seen.ticks > 2 ? true : undefined));
    const served = await get('/kit-test');
    assert.equal(served.text, 'served');
    await helper.unload();
    assert.deepEqual(seen.closed, ['second registered (async)', 'first registered']);
    assert.equal(registry.listenerCount('types'), 0);
    const ticks = seen.ticks;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(seen.ticks, ticks, 'the timer stopped');
    assert.equal((await get('/kit-test')).status, 404);
    // Deployed again: one handler again (one dispatcher per app, not one per deploy).
    await helper.load(kitNodes, flow({}));
    assert.equal((await get('/kit-test')).text, 'served');
  });

  it('status updates are throttled: a burst renders once now and once at the end of the interval', async () => {
    await helper.load(kitNodes, flow({}));
    seen.renders = 0;
    for (let i = 0; i < 100; i++) registry.emit('types');
    await eventually('the trailing render', () => (seen.renders === 2 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(seen.renders, 2, 'nothing more after the burst');
    const last = statuses('n').at(-1);
    assert.deepEqual(last, { fill: 'green', shape: 'dot', text: 'kit-node.status.count' });
  });

  it('state files: <userDir>/iotb-<kind>/<node id><suffix>; a file under the old name is moved there once', async () => {
    const old = join(userDir.path, 'kit-m1.json');
    writeFileSync(old, '{"kept":true}');
    await helper.load(kitNodes, flow({ id: 'm1' }));
    const file = join(userDir.path, 'iotb-kit', 'm1.json');
    assert.equal(seen.stateFile, file);
    assert.ok(!existsSync(old));
    assert.equal(readFileSync(file, 'utf8'), '{"kept":true}');
    await helper.unload();
    // An old file that shows up again does not replace the state under the new name.
    writeFileSync(old, '{"stale":true}');
    await helper.load(kitNodes, flow({ id: 'm1' }));
    assert.equal(readFileSync(file, 'utf8'), '{"kept":true}');
    assert.ok(existsSync(old));
  });

  it('a node id that is not a file name is made one', async () => {
    mkdirSync(join(userDir.path, 'iotb-kit'), { recursive: true });
    await helper.load(kitNodes, flow({ id: 'a/b:c' }));
    assert.equal(seen.stateFile, join(userDir.path, 'iotb-kit', 'a_b_c.json'));
  });
});

describe('numberSetting', () => {
  it('takes numbers and the text of number fields within the range; anything else is the fallback', () => {
    const positive = { fallback: 7, above: 0 };
    assert.equal(numberSetting('2.5', positive), 2.5);
    assert.equal(numberSetting(3, positive), 3);
    for (const v of ['', '  ', 'x', undefined, null, true, 0, '0', -1, Infinity, NaN])
      assert.equal(numberSetting(v, positive), 7, String(v));
    assert.equal(numberSetting(0, { fallback: 7, min: 0 }), 0, 'min is inclusive');
    assert.equal(numberSetting('2.9', { fallback: 1, min: 1, integer: true }), 2, 'whole numbers round down');
    assert.equal(numberSetting(0.5, { fallback: 1, min: 1, integer: true }), 1, 'rounded down below min');
    assert.equal(numberSetting(70_000, { fallback: 1883, max: 65_535 }), 1883);
    assert.equal(numberSetting('', { fallback: undefined, min: 0 }), undefined);
  });
});
