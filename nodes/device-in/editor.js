RED.nodes.registerType('iotb-device-in', {
  category: 'IoT backend',
  color: '#87c5eb',
  defaults: {
    name: { value: '' },
    broker: { value: '', type: 'iotb-broker', required: true },
    telemetry: { value: true },
    status: { value: true },
    ack: { value: true },
    connectionEvents: { value: true },
    securityEvents: { value: true },
    payloadFormat: { value: 'string' },
    ackWhen: { value: 'stored' },
    batchSize: { value: 1, validate: RED.validators.number() },
    batchWaitMs: { value: 5, validate: RED.validators.number() },
  },
  inputs: 0,
  outputs: 2,
  outputLabels: function (i) {
    return this._('iotb-device-in.outputs.' + ['messages', 'events'][i]);
  },
  icon: 'bridge.svg',
  paletteLabel: 'device in',
  label: function () {
    return this.name || 'device in';
  },
});
