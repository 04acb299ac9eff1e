import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Registry } from '../../nodes/lib/registry/registry';
import type { TwinService } from '../../nodes/lib/twin/twin-service';
import { helper, nodeModule, received } from '../support/helper';
import { freePort, tempDir } from '../support/servers';

/** Node-RED's app for HTTP nodes as the firmware node sees it (the test helper does not serve it itself). */
let httpNode: RequestListener | undefined;
const firmwareModule = nodeModule('firmware') as (RED: { httpNode: RequestListener }) => void;
const nodes = [
  nodeModule('registry'),
  nodeModule('broker'),
  (RED: { httpNode: RequestListener }) => {
    httpNode = RED.httpNode;
    firmwareModule(RED);
  },
];
const SECRET = 'node-test-registry-secret-0123456789abcdef';
const OPERATOR = 'node-test-operator-key-0123456789abcdef';

describe('iotb-firmware node (in a real Node-RED runtime: registry, broker with twins, HTTP routes)', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = tempDir('firmware-node');
    helper.settings({ userDir: dir.path });
    const port = await freePort();
    await helper.load(
      nodes,
      [
        { id: 'reg', type: 'iotb-registry', file: 'devices.json', types: [{ name: 'lamp' }] },
        { id: 'brk', type: 'iotb-broker', registry: 'reg', host: '127.0.0.1', port, topicPrefix: 'devices' },
        {
          id: 'fw',
          type: 'iotb-firmware',
          registry: 'reg',
          broker: 'brk',
          waves: '50,100',
          wires: [['out']],
        },
        { id: 'out', type: 'helper' },
      ],
      { reg: { secret: SECRET, apiKey: OPERATOR } },
    );
    const registry = helper.getNode('reg').registry as Registry;
    for (const id of ['lamp-1', 'lamp-2']) registry.createDevice({ id, type: 'lamp' });
  });
  afterEach(async () => {
    await helper.unload();
    dir.remove();
  });

  it('serves uploads on the HTTP routes, takes a campaign as a message and sends each transition', async () => {
    const server = createServer(httpNode).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const up = await fetch(`${base}/api/firmware/artifacts?type=lamp&version=1.1.0`, {
        method: 'POST',
        headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(randomBytes(4096)),
      });
      assert.equal(up.status, 201, await up.text());
      assert.equal((await fetch(`${base}/api/firmware/artifacts`)).status, 401);
    } finally {
      server.close();
      server.closeAllConnections();
    }
    assert.ok(existsSync(join(dir.path, 'iotb-firmware', 'signing-key.pem')));

    const out = received(helper.getNode('out'));
    helper.getNode('fw').receive({ topic: 'campaign/create', payload: { type: 'lamp', version: '1.1.0' } });
    const answer = await out.next((m) => m.topic === 'campaign/create');
    assert.equal(answer.payload.status, 'RUNNING');
    assert.deepEqual(
      answer.payload.waveProgress.map((w: { devices: number }) => w.devices),
      [1, 1],
    );
    const notified = await out.next((m) => m.topic === 'firmware/device' && m.payload.to === 'NOTIFIED');
    const twins = helper.getNode('brk').twins as TwinService;
    const offer = twins.get(notified.payload.deviceId)!.desired.state.firmware as {
      url: string;
      campaign: string;
    };
    assert.equal(offer.url, '/api/firmware/artifacts/lamp/1.1.0/download');
    assert.equal(offer.campaign, answer.payload.id);

    // The device reports the version through its twin: SUCCEEDED, then the next wave after the soak.
    twins.mergeReported(notified.payload.deviceId, { firmware: { version: '1.1.0' } });
    const done = await out.next((m) => m.topic === 'firmware/device' && m.payload.to === 'SUCCEEDED');
    assert.equal(done.payload.deviceId, notified.payload.deviceId);
    const soak = await out.next((m) => m.topic === 'firmware/campaign' && m.payload.to === 'SOAKING');
    assert.equal(soak.payload.wave, 0);

    helper.getNode('fw').receive({ topic: 'campaign/abort', campaign: answer.payload.id });
    const aborted = await out.next((m) => m.topic === 'campaign/abort');
    assert.equal(aborted.payload.status, 'ABORTED');
  });

  it('refuses an unknown operation with done(err) and the reason in msg.rejection', async () => {
    const fw = helper.getNode('fw');
    const failed = new Promise<any>((resolve) =>
      fw.on('call:error', (call: any) => {
        if (call.args[1]) resolve(call);
      }),
    );
    fw.receive({ topic: 'campaign/explode' });
    const call = await failed;
    assert.equal(call.args[1].rejection.code, 'INVALID');
  });
});
