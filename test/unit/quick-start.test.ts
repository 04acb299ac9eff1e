/** The README quick-start block as npm start prints it and the quick-start test runs it (nodes/lib/quick-start.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quickStartBlock, quickStartCommands, quickStartExample } from '../../nodes/lib/quick-start';

const readme = [
  '# title',
  '```sh',
  'not this block',
  '```',
  '<!-- quick-start-example -->',
  '```sh',
  '# a comment',
  'A=$(curl http://127.0.0.1:${IOTB_PORT:-1880}/x \\',
  '  -d y)',
  'mosquitto_pub -p ${IOTB_MQTT_PORT:-1883} -m "${OTHER:-z}"',
  '```',
  'after',
].join('\n');

describe('README quick start block', () => {
  it('reads the block after the marker, and its commands with continuation lines joined', () => {
    assert.match(quickStartBlock(readme), /^# a comment\n/);
    assert.deepEqual(quickStartCommands(readme), [
      'A=$(curl http://127.0.0.1:${IOTB_PORT:-1880}/x \\\n  -d y)',
      'mosquitto_pub -p ${IOTB_MQTT_PORT:-1883} -m "${OTHER:-z}"',
    ]);
  });

  it("puts this start's ports in place of the defaults it is given, leaves other variables alone", () => {
    const text = quickStartExample(readme, { IOTB_PORT: '2880', IOTB_MQTT_PORT: '2883' });
    assert.match(text, /127\.0\.0\.1:2880\/x/);
    assert.match(text, /-p 2883 -m "\$\{OTHER:-z\}"/);
  });

  it('says what is missing', () => {
    assert.throws(() => quickStartBlock('# no marker'), /no <!-- quick-start-example --> marker/);
    assert.throws(() => quickStartBlock('<!-- quick-start-example -->\ntext'), /no sh block/);
  });
});
