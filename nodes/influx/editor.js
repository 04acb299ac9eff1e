RED.nodes.registerType('iotb-influx', {
  category: 'config',
  defaults: {
    name: { value: '' },
    flavour: { value: '1', required: true },
    url: { value: 'http://127.0.0.1:8086', required: true, validate: RED.validators.regex(/^https?:\/\/.+/) },
    database: { value: 'iot' },
    retentionPolicy: { value: '' },
    org: { value: '' },
    bucket: { value: '' },
    timeoutS: { value: 10, validate: RED.validators.number() },
    gzip: { value: false },
    rejectUnauthorized: { value: true },
  },
  credentials: {
    token: { type: 'password' },
    username: { type: 'text' },
    password: { type: 'password' },
    ca: { type: 'text' },
    cert: { type: 'text' },
    key: { type: 'password' },
  },
  label: function () {
    return this.name || this.url + ' ' + (this.flavour === '2' ? this.bucket : this.database);
  },
  oneditprepare: function () {
    const node = this;
    function showFlavour() {
      const f = $('#node-config-input-flavour').val();
      $('.iotb-influx-v13').toggle(f !== '2');
      $('.iotb-influx-v1').toggle(f === '1');
      $('.iotb-influx-v2').toggle(f === '2');
    }
    $('#node-config-input-flavour').on('change', showFlavour);
    showFlavour();
    $('#iotb-influx-test').on('click', function () {
      const out = $('#iotb-influx-test-result');
      out.text(node._('iotb-influx.test.running'));
      const body = { id: node.id, credentials: {} };
      ['flavour', 'url', 'database', 'retentionPolicy', 'org', 'bucket', 'timeoutS'].forEach(function (k) {
        body[k] = $('#node-config-input-' + k).val();
      });
      body.gzip = $('#node-config-input-gzip').is(':checked');
      body.rejectUnauthorized = $('#node-config-input-rejectUnauthorized').is(':checked');
      ['token', 'username', 'password', 'ca', 'cert', 'key'].forEach(function (k) {
        body.credentials[k] = $('#node-config-input-' + k).val();
      });
      $.ajax({
        url: 'iotb-influx/test',
        type: 'POST',
        contentType: 'application/json',
        data: JSON.stringify(body),
      })
        .done(function (r) {
          out.css('color', r.ok ? 'green' : 'red').text(r.message);
        })
        .fail(function (xhr) {
          out.css('color', 'red').text(node._('iotb-influx.test.failed') + xhr.status);
        });
    });
  },
});
