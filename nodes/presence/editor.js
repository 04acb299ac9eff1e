RED.nodes.registerType('iotb-presence', {
  category: 'IoT backend',
  color: '#87c5eb',
  defaults: {
    name: { value: '' },
    broker: { value: '', type: 'iotb-broker', required: false },
    heartbeatTimeoutS: { value: 120, required: true, validate: RED.validators.number() },
  },
  inputs: 1,
  outputs: 2,
  outputLabels: function (i) {
    return this._('iotb-presence.outputs.' + ['messages', 'changes'][i]);
  },
  icon: 'font-awesome/fa-heartbeat',
  paletteLabel: 'presence',
  label: function () {
    return this.name || 'presence';
  },
});
