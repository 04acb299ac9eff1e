(function () {
  const SAMPLE = '{ "ts": ' + Date.now() + ', "temperature": 999, "humidity": 40 }';

  /** Shows whether the schema text is JSON; `node` is the node being edited (its `_` reads the node's catalog). */
  function showSyntax(node, text) {
    const $msg = $('#node-input-schema-syntax');
    try {
      JSON.parse(text);
      $msg
        .text(node._('iotb-validate.editor.syntaxOk'))
        .css('color', 'var(--red-ui-text-color-success, #080)');
      return true;
    } catch (err) {
      $msg
        .text(node._('iotb-validate.editor.syntaxError', { error: err.message }))
        .css('color', 'var(--red-ui-text-color-error, #c00)');
      return false;
    }
  }

  function renderVerdict(node, result) {
    const $out = $('#node-input-test-result').empty();
    if (result.schemaError) {
      $('<div>').text(result.schemaError).css('color', 'var(--red-ui-text-color-error, #c00)').appendTo($out);
      return;
    }
    result.accepted.forEach(function (a) {
      $('<div>')
        .text(
          (a.index === undefined ? '' : '[' + a.index + '] ') +
            node._('iotb-validate.editor.accepted') +
            ': ' +
            JSON.stringify(a.fields) +
            ' @ ' +
            new Date(a.timestamp).toISOString(),
        )
        .css('color', 'var(--red-ui-text-color-success, #080)')
        .appendTo($out);
    });
    result.rejected.forEach(function (r) {
      $('<div>')
        .text(node._('iotb-validate.editor.rejected') + ' ' + r.rejection.code + ': ' + r.rejection.reason)
        .css('color', 'var(--red-ui-text-color-error, #c00)')
        .appendTo($out);
    });
  }

  RED.nodes.registerType('iotb-validate', {
    category: 'IoT backend',
    color: '#a9d98b',
    defaults: {
      name: { value: '' },
      schemaSource: { value: 'inline' },
      registry: { value: '', type: 'iotb-registry', required: false },
      schema: {
        value:
          '{\n  "type": "object",\n  "properties": {\n    "temperature": { "type": "number", "minimum": -40, "maximum": 150 },\n    "humidity": { "type": "number", "minimum": 0, "maximum": 100 }\n  },\n  "required": ["temperature"]\n}',
      },
      schemaFile: { value: '' },
      schemaProperty: { value: 'schema' },
      coerce: { value: false },
      useDefaults: { value: false },
      unknown: { value: 'schema' },
      allErrors: { value: false },
      split: { value: false },
      maxBytes: { value: 262144, validate: RED.validators.number() },
      maxDepth: { value: 32, validate: RED.validators.number() },
      maxKeys: { value: 1000, validate: RED.validators.number() },
      maxArrayLength: { value: 10000, validate: RED.validators.number() },
      maxFutureS: { value: 300, validate: RED.validators.number() },
      maxAgeH: { value: 168, validate: RED.validators.number() },
      dedupPerDevice: { value: 100, validate: RED.validators.number() },
      dedupDevices: { value: 10000, validate: RED.validators.number() },
      tagKeys: { value: '' },
    },
    inputs: 1,
    outputs: 2,
    outputLabels: function (i) {
      return this._(i === 0 ? 'iotb-validate.outputs.valid' : 'iotb-validate.outputs.rejected');
    },
    icon: 'font-awesome/fa-check-square-o',
    paletteLabel: 'validate',
    label: function () {
      return this.name || 'validate';
    },
    oneditprepare: function () {
      const node = this;
      node.schemaEditor = RED.editor.createEditor({
        id: 'node-input-schema-editor',
        mode: 'json',
        value: node.schema,
      });
      node.schemaEditor.getSession().on('change', function () {
        showSyntax(node, node.schemaEditor.getValue());
      });
      showSyntax(node, node.schema);
      node.sampleEditor = RED.editor.createEditor({
        id: 'node-input-sample-editor',
        mode: 'json',
        value: SAMPLE,
      });
      $('#node-input-schema-format').on('click', function (e) {
        e.preventDefault();
        const text = node.schemaEditor.getValue();
        if (showSyntax(node, text)) node.schemaEditor.setValue(JSON.stringify(JSON.parse(text), null, 2), -1);
      });
      $('#node-input-test').on('click', function (e) {
        e.preventDefault();
        const config = {};
        Object.keys(node._def.defaults).forEach(function (k) {
          const $el = $('#node-input-' + k);
          if ($el.length) config[k] = $el.is(':checkbox') ? $el.is(':checked') : $el.val();
        });
        $.ajax({
          url: 'iotb-validate/test',
          type: 'POST',
          contentType: 'application/json',
          data: JSON.stringify({
            schema: node.schemaEditor.getValue(),
            payload: node.sampleEditor.getValue(),
            config: config,
          }),
          success: function (result) {
            renderVerdict(node, result);
          },
          error: function (xhr) {
            $('#node-input-test-result').text(
              node._('iotb-validate.editor.testFailed', { error: xhr.responseText || xhr.statusText }),
            );
          },
        });
      });
      $('#node-input-schemaSource')
        .on('change', function () {
          const v = $(this).val();
          $('.iotb-validate-source').hide();
          $('.iotb-validate-source-' + v).show();
          RED.tray.resize();
        })
        .trigger('change');
    },
    oneditsave: function () {
      this.schema = this.schemaEditor.getValue();
      this.schemaEditor.destroy();
      this.sampleEditor.destroy();
      delete this.schemaEditor;
      delete this.sampleEditor;
    },
    oneditcancel: function () {
      this.schemaEditor.destroy();
      this.sampleEditor.destroy();
      delete this.schemaEditor;
      delete this.sampleEditor;
    },
  });
})();
