RED.nodes.registerType('iotb-command', {
  category: 'IoT backend',
  color: '#f2a66b',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry' },
    transport: { value: 'mqtt' },
    broker: { value: '', type: 'iotb-broker', required: false },
    url: { value: 'mqtt://localhost:1883' },
    protocol: { value: 'auto' },
    prefix: { value: 'devices' },
    timeoutMs: { value: 30000, validate: RED.validators.number() },
    ttlMs: { value: 3600000, validate: RED.validators.number() },
    queueBound: { value: 100, validate: RED.validators.number() },
    ratePerSecond: { value: 5, validate: RED.validators.number() },
  },
  credentials: {
    username: { type: 'text' },
    password: { type: 'password' },
  },
  inputs: 1,
  outputs: 3,
  outputLabels: function (i) {
    return this._('iotb-command.outputs.' + ['result', 'transitions', 'refused'][i]);
  },
  icon: 'font-awesome/fa-terminal',
  paletteLabel: 'command',
  label: function () {
    return this.name || 'command';
  },
  oneditprepare: function () {
    function toggle() {
      var external = $('#node-input-transport').val() === 'mqtt';
      $('.iotb-command-mqtt').toggle(external);
      $('.iotb-command-broker').toggle(!external);
    }
    $('#node-input-transport').on('change', toggle);
    toggle();
  },
});
