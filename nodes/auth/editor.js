RED.nodes.registerType('iotb-auth', {
  category: 'IoT backend',
  color: '#87c5eb',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry', required: true },
    mode: { value: 'bearer' },
    windowS: { value: 300, validate: RED.validators.number() },
    topicPrefix: { value: 'devices' },
    ratePerS: { value: 0, validate: RED.validators.number(true) },
  },
  inputs: 1,
  outputs: 2,
  outputLabels: function (i) {
    return this._('iotb-auth.outputs.' + ['authenticated', 'rejected'][i]);
  },
  icon: 'font-awesome/fa-id-card',
  paletteLabel: 'auth',
  label: function () {
    return this.name || 'auth: ' + this._('iotb-auth.mode.' + (this.mode || 'bearer'));
  },
  oneditprepare: function () {
    $('#node-input-mode')
      .on('change', function () {
        var m = $(this).val();
        $('.iotb-auth-signed').toggle(m === 'signed');
        $('.iotb-auth-topic').toggle(m === 'topic');
      })
      .trigger('change');
  },
});
