RED.nodes.registerType('iotb-simulator', {
  category: 'IoT backend',
  color: '#7fd3c2',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry', required: true },
    host: { value: '127.0.0.1', required: true },
    port: { value: 1883, required: true },
    count: { value: 5, required: true, validate: RED.validators.number() },
    idPrefix: {
      value: 'sim',
      required: true,
      // As the runtime checks it: the last id it makes, `<prefix>-<count>`, with iotb-registry's exported pattern.
      validate: function (prefix) {
        return new RegExp(RED.settings.iotbRegistryDeviceIdPattern).test(prefix + '-' + (this.count || 1));
      },
    },
    deviceType: { value: 'sensor', required: true },
    intervalS: { value: 5, required: true, validate: RED.validators.number() },
    seed: { value: 1, validate: RED.validators.number() },
  },
  inputs: 0,
  outputs: 1,
  icon: 'font-awesome/fa-microchip',
  paletteLabel: 'simulator',
  label: function () {
    return this.name || 'simulator';
  },
});
