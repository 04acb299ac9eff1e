RED.nodes.registerType('iotb-health', {
  category: 'IoT backend',
  color: '#7fd3c2',
  defaults: {
    name: { value: '' },
  },
  inputs: 1,
  outputs: 1,
  icon: 'font-awesome/fa-stethoscope',
  paletteLabel: 'health',
  label: function () {
    return this.name || 'health';
  },
});
