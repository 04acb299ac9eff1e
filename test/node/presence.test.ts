import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { tempDir } from '../support/servers';

const presenceNode = nodeModule('presence');

describe('iotb-presence node', () => {
  const userDir = tempDir('presence-node');
  before(() => {
    helper.settings({ userDir: userDir.path });
    return helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    helper.settings({});
    userDir.remove();
  });
  afterEach(() => helper.unload());

  const flow = (id: string): unknown[] => [
    { id, type: 'iotb-presence', heartbeatTimeoutS: 0.2, wires: [['msgs'], ['changes']] },
    { id: 'msgs', type: 'helper' },
    { id: 'changes', type: 'helper' },
  ];

  it('passes messages through, reports online when seen and offline after the heartbeat timeout', async () => {
    await helper.load(presenceNode, flow('p1'));
    const p = helper.getNode('p1');
    const passed = nextMessage(helper.getNode('msgs'));
    const online = nextMessage(helper.getNode('changes'));
    p.receive({ device: { id: 'd1', type: 't' }, payload: { v: 1 } });
    assert.deepEqual((await passed).payload, { v: 1 });
    const on = await online;
    assert.equal(on.topic, 'devices/d1/presence');
    assert.equal(on.payload.online, true);
    const off = await nextMessage(helper.getNode('changes'));
    assert.equal(off.payload.online, false);
    assert.equal(off.payload.reason, 'heartbeat timeout');
  });

  it('answers presence/get for one device and for all', async () => {
    await helper.load(presenceNode, flow('p2'));
    const p = helper.getNode('p2');
    const msgs = helper.getNode('msgs');
    p.receive({ device: { id: 'd2', type: 't' } });
    await nextMessage(msgs);
    let answer = nextMessage(msgs);
    p.receive({ topic: 'presence/get', deviceId: 'd2' });
    assert.equal((await answer).payload.online, true);
    answer = nextMessage(msgs);
    p.receive({ topic: 'presence/get', deviceId: 'unknown' });
    assert.deepEqual((await answer).payload, { online: false, lastSeen: 0, connected: false });
    answer = nextMessage(msgs);
    p.receive({ topic: 'presence/get' });
    assert.deepEqual(Object.keys((await answer).payload), ['d2']);
  });

  it('keeps last-seen across a redeploy, with the device offline until seen again', async () => {
    await helper.load(presenceNode, flow('p3'));
    helper.getNode('p3').receive({ device: { id: 'd3', type: 't' } });
    await nextMessage(helper.getNode('msgs'));
    await helper.unload();
    await helper.load(presenceNode, flow('p3'));
    const answer = nextMessage(helper.getNode('msgs'));
    helper.getNode('p3').receive({ topic: 'presence/get', deviceId: 'd3' });
    const state = (await answer).payload;
    assert.equal(state.online, false);
    assert.ok(state.lastSeen > Date.now() - 60_000);
  });

  it('marks every device of a micro-batch seen and passes the batch on whole', async () => {
    await helper.load(presenceNode, flow('p4'));
    const p = helper.getNode('p4');
    const msgs = helper.getNode('msgs');
    const changes: string[] = [];
    const onlineBoth = new Promise<void>((resolve) => {
      helper.getNode('changes').on('input', (m: { payload: { deviceId: string; online: boolean } }) => {
        if (m.payload.online) changes.push(m.payload.deviceId);
        if (changes.length === 2) resolve();
      });
    });
    const passed = nextMessage(msgs);
    const device = [
      { id: 'b1', type: 't' },
      { id: 'b2', type: 't' },
      { id: 'b1', type: 't' },
    ];
    p.receive({ topic: 'batch', device, payload: ['{}', '{}', '{}'], ackId: [null, null, null] });
    assert.equal((await passed).device.length, 3);
    await onlineBoth;
    assert.deepEqual(changes.sort(), ['b1', 'b2']);
    const answer = nextMessage(msgs);
    p.receive({ topic: 'presence/get' });
    const all = (await answer).payload;
    assert.equal(all.b1.online, true);
    assert.equal(all.b2.online, true);
  });
});
