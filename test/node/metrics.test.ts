import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { helper, nextMessage, nodeModule } from '../support/helper';
import { rejection } from '../../nodes/lib/rejection';

const metricsNode = nodeModule('metrics');

describe('iotb-metrics node', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('answers any message with the rejection counters as Prometheus text', async () => {
    await helper.load(metricsNode, [
      { id: 'm', type: 'iotb-metrics', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    rejection('validate', 'SCHEMA', 'temperature must be <= 150 (got 999)');
    const got = nextMessage(helper.getNode('out'));
    helper.getNode('m').receive({ payload: 'go' });
    const msg = await got;
    assert.match(msg.payload, /iotb_rejected_total\{stage="validate",code="SCHEMA"\} 1/);
    assert.match(msg.contentType, /^text\/plain/);
    assert.ok(Array.isArray(msg.metrics));
  });
});
