RED.nodes.registerType('iotb-mqtt-in', {
  category: 'IoT backend',
  color: '#87c5eb',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry', required: true },
    url: { value: 'mqtt://127.0.0.1:1883', required: true },
    protocolVersion: { value: 5 },
    clientId: { value: '' },
    topicPrefix: { value: 'devices', required: true },
    sharedGroup: { value: '' },
    sessions: { value: 1, validate: RED.validators.number() },
    sessionExpiryS: { value: 86400, validate: RED.validators.number() },
    receiveMaximum: { value: 1000, validate: RED.validators.number() },
    maxHeld: { value: 1000, validate: RED.validators.number() },
    ackTimeoutS: { value: 30, validate: RED.validators.number() },
    batchSize: { value: 1, validate: RED.validators.number() },
    batchWaitMs: { value: 20, validate: RED.validators.number() },
    batchWaitMaxMs: { value: 20, validate: RED.validators.number() },
    payloadFormat: { value: 'string' },
  },
  credentials: {
    username: { type: 'text' },
    password: { type: 'password' },
    ca: { type: 'text' },
  },
  inputs: 0,
  outputs: 2,
  outputLabels: function (i) {
    return this._('iotb-mqtt-in.outputs.' + ['readings', 'refused'][i]);
  },
  icon: 'font-awesome/fa-plug',
  paletteLabel: 'mqtt in (acked)',
  label: function () {
    return this.name || 'mqtt in: ' + (this.topicPrefix || 'devices') + '/+/telemetry';
  },
  oneditprepare: function () {
    $('#node-input-protocolVersion')
      .on('change', function () {
        $('.iotb-mqtt-in-v5').toggle($(this).val() === '5');
      })
      .trigger('change');
  },
});
