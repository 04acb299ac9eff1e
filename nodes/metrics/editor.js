RED.nodes.registerType('iotb-metrics', {
  category: 'IoT backend',
  color: '#7fd3c2',
  defaults: {
    name: { value: '' },
    intervalS: { value: 0, validate: RED.validators.number() },
  },
  inputs: 1,
  outputs: 1,
  icon: 'font-awesome/fa-tachometer',
  paletteLabel: 'metrics',
  label: function () {
    return this.name || 'metrics';
  },
});
