RED.nodes.registerType('iotb-firmware', {
  category: 'IoT backend',
  color: '#f2a66b',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry', required: true },
    broker: { value: '', type: 'iotb-broker', required: true },
    basePath: {
      value: '/api/firmware',
      required: true,
      validate: RED.validators.regex(/^\/[A-Za-z0-9/_-]*$/),
    },
    publicUrl: { value: '' },
    maxImageMB: { value: 100, validate: RED.validators.number() },
    maxDownloads: { value: 50, validate: RED.validators.number() },
    downloadRatePerS: { value: 1, validate: RED.validators.number() },
    waves: {
      value: '1,10,50,100',
      validate: RED.validators.regex(/^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$/),
    },
    soakS: { value: 600, validate: RED.validators.number() },
    timeoutS: { value: 3600, validate: RED.validators.number() },
    failureThresholdPercent: { value: 5, validate: RED.validators.number() },
    maxConcurrent: { value: 100, validate: RED.validators.number() },
  },
  inputs: 1,
  outputs: 1,
  outputLabels: function () {
    return this._('iotb-firmware.outputs.events');
  },
  icon: 'font-awesome/fa-cloud-download',
  paletteLabel: 'firmware',
  label: function () {
    return this.name || 'firmware ' + (this.basePath || '/api/firmware');
  },
  oneditprepare: function () {
    var node = this;
    var path = ($('#node-input-basePath').val() || '/api/firmware').replace(/\/+$/, '');
    var root = (RED.settings.httpNodeRoot || '/').replace(/\/+$/, '');
    $.getJSON(root + path + '/key')
      .done(function (k) {
        $('#iotb-firmware-key').text(k.publicKeyPem);
      })
      .fail(function () {
        $('#iotb-firmware-key').text(node._('iotb-firmware.label.keyAfterDeploy'));
      });
  },
});
