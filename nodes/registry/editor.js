(function () {
  function randomHex(bytes) {
    var a = new Uint8Array(bytes);
    window.crypto.getRandomValues(a);
    return Array.prototype.map
      .call(a, function (b) {
        return ('0' + b.toString(16)).slice(-2);
      })
      .join('');
  }
  function jsonOk(v) {
    if (!v || !v.trim()) return true;
    try {
      var o = JSON.parse(v);
      return typeof o === 'object' && o !== null && !Array.isArray(o);
    } catch {
      return false;
    }
  }
  RED.nodes.registerType('iotb-registry', {
    category: 'config',
    defaults: {
      name: { value: '' },
      file: { value: 'iotb-registry.json', required: true },
      rotationGraceS: { value: 3600, validate: RED.validators.number() },
      types: {
        value: [],
        validate: function (types) {
          // The runtime's type name pattern (nodes/lib/device-id.ts), exported through the node's settings.
          var typeName = new RegExp(RED.settings.iotbRegistryTypeNamePattern);
          return (types || []).every(function (t) {
            return typeName.test(t.name) && jsonOk(t.schema) && jsonOk(t.commands) && jsonOk(t.alarms);
          });
        },
      },
    },
    credentials: {
      secret: { type: 'password', required: true },
      apiKey: { type: 'password' },
    },
    label: function () {
      return this.name || this.file || 'registry';
    },
    oneditprepare: function () {
      var node = this;
      // A new registry gets a random 256-bit secret; Node-RED keeps it encrypted with the credentials.
      if (!node.credentials || !node.credentials.has_secret) {
        if (!$('#node-config-input-secret').val()) $('#node-config-input-secret').val(randomHex(32));
      }
      var list = $('#node-config-input-types-container')
        .css('min-height', '150px')
        .editableList({
          addItem: function (row, _i, t) {
            row.css({ overflow: 'hidden' });
            $('<input type="text" class="iotb-type-name" style="width: 100%; margin-bottom: 4px">')
              .attr('placeholder', node._('iotb-registry.label.typeName'))
              .val(t.name || '')
              .appendTo(row);
            $(
              '<textarea class="iotb-type-schema" rows="4" style="width: 100%; font-family: monospace; margin-bottom: 4px">',
            )
              .attr('placeholder', node._('iotb-registry.label.schema'))
              .val(t.schema || '')
              .appendTo(row);
            $(
              '<textarea class="iotb-type-commands" rows="3" style="width: 100%; font-family: monospace; margin-bottom: 4px">',
            )
              .attr('placeholder', node._('iotb-registry.label.commands'))
              .val(t.commands || '')
              .appendTo(row);
            $('<textarea class="iotb-type-alarms" rows="3" style="width: 100%; font-family: monospace">')
              .attr('placeholder', node._('iotb-registry.label.alarms'))
              .val(t.alarms || '')
              .appendTo(row);
          },
          removable: true,
          sortable: true,
        });
      (node.types || []).forEach(function (t) {
        list.editableList('addItem', t);
      });
    },
    oneditsave: function () {
      var types = [];
      $('#node-config-input-types-container')
        .editableList('items')
        .each(function () {
          var name = $(this).find('.iotb-type-name').val().trim();
          if (!name) return;
          types.push({
            name: name,
            schema: $(this).find('.iotb-type-schema').val(),
            commands: $(this).find('.iotb-type-commands').val(),
            alarms: $(this).find('.iotb-type-alarms').val(),
          });
        });
      this.types = types;
    },
    oneditresize: function (size) {
      var rows = $('#dialog-form>div:not(.node-config-input-types-container-row)');
      var height = size.height;
      rows.each(function () {
        height -= $(this).outerHeight(true);
      });
      $('#node-config-input-types-container').editableList('height', Math.max(height - 20, 150));
    },
  });
})();
