import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { printableReason, rejection } from '../../nodes/lib/rejection';
import { encodeLine } from '../../nodes/lib/influx/line-protocol';

describe('rejection reasons', () => {
  it('escapes line breaks, control characters and unpaired surrogates, so the reason can be stored', () => {
    const r = rejection('validate', 'PARSE', 'bad "a\nb\r\tc\u0000" and \ud800 but 😀 kept');
    assert.equal(r.reason, 'bad "a\\nb\\r\\tc\\u0000" and \\ud800 but 😀 kept');
    // The escaped reason is a string field InfluxDB takes as it is.
    const line = encodeLine({ measurement: 'device_events', fields: { reason: r.reason }, timeNs: '1' });
    assert.ok(line.includes('\\\\nb'));
    assert.equal(printableReason('plain text'), 'plain text');
    assert.equal(printableReason('\udc00x\ud83d'), '\\udc00x\\ud83d');
  });
});
