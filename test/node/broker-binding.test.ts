/**
 * The iotb-broker node's listener in the real Node-RED runtime: loopback when no host is set, and a refusal that
 * says why when asked to listen without TLS on an address other machines reach.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { BrokerHolder } from '../../nodes/lib/broker/broker';
import { helper, nodeModule } from '../support/helper';
import { eventually, freePort, tempDir, waitForPort } from '../support/servers';

const nodes = [nodeModule('registry'), nodeModule('broker')];

/** What the node logged at `level`, as text. */
function logged(id: string, level: 'ERROR' | 'WARN'): string[] {
  const log = helper.log() as { args: [{ level: number; id: string; msg: unknown }][] } & Record<
    string,
    number
  >;
  return log.args.filter(([e]) => e.level === log[level] && e.id === id).map(([e]) => String(e.msg));
}

describe('iotb-broker: where it listens', () => {
  let dir: ReturnType<typeof tempDir>;
  let port: number;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = tempDir('broker-binding');
    helper.settings({ userDir: dir.path });
    port = await freePort();
  });
  afterEach(async () => {
    await helper.unload();
    dir.remove();
  });

  const flow = (broker: Record<string, unknown>) => [
    { id: 'reg', type: 'iotb-registry', file: 'devices.json', types: [{ name: 'sensor' }] },
    { id: 'brk', type: 'iotb-broker', registry: 'reg', port, topicPrefix: 'devices', ...broker },
  ];

  it('listens on 127.0.0.1 when no host is set', async () => {
    await helper.load(nodes, flow({ host: '' }));
    const broker = (helper.getNode('brk') as unknown as BrokerHolder).broker!;
    await eventually('the broker to listen', () => (broker.state === 'listening' ? true : undefined));
    await waitForPort(port); // on 127.0.0.1
  });

  it('refuses 0.0.0.0 without TLS and logs why; nothing listens', async () => {
    await helper.load(nodes, flow({ host: '0.0.0.0' }));
    const broker = (helper.getNode('brk') as unknown as BrokerHolder).broker!;
    await eventually('the broker to fail', () =>
      broker.state === 'closed' || broker.state === 'failed' ? true : undefined,
    );
    // The helper has no message catalog: the key of "cannot listen on …: <reason>" (the reason's text is
    // asserted in test/integration/broker-tls.test.ts).
    assert.deepEqual(logged('brk', 'ERROR'), ['iotb-broker.error.start']);
    assert.equal(broker.running, false);
  });
});
