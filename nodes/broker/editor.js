RED.nodes.registerType('iotb-broker', {
  category: 'config',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry', required: true },
    host: { value: '127.0.0.1', required: true },
    port: { value: 1883, required: true, validate: RED.validators.number() },
    topicPrefix: { value: 'devices', required: true, validate: RED.validators.regex(/^[A-Za-z0-9_.:-]+$/) },
    certFile: { value: '' },
    keyFile: { value: '' },
    caFile: { value: '' },
    allowPlaintext: { value: false },
    wsEnabled: { value: false },
    wsPort: { value: 8083, validate: RED.validators.number(true) },
    wsPath: { value: '/mqtt' },
    maxPacketKb: { value: 256, validate: RED.validators.number() },
    maxConnections: { value: 10000, validate: RED.validators.number() },
    connectRatePerIp: { value: 200, validate: RED.validators.number() },
    lockoutThreshold: { value: 5, validate: RED.validators.number() },
    keepaliveLimitS: { value: 1200, validate: RED.validators.number() },
    maxUnacked: { value: 10000, validate: RED.validators.number(true) },
    ackTimeoutS: { value: 30, validate: RED.validators.number(true) },
    twinFile: { value: 'iotb-twins.json' },
    twinMaxKb: { value: 16, validate: RED.validators.number(true) },
  },
  label: function () {
    return this.name || (this.certFile ? 'mqtts' : 'mqtt') + '://' + this.host + ':' + this.port;
  },
  oneditprepare: function () {
    $('#node-config-input-wsEnabled')
      .on('change', function () {
        $('.iotb-broker-ws').toggle(this.checked);
      })
      .trigger('change');
  },
});
