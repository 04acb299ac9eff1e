(function () {
  // A field rule is edited in a form: one expandable row per rule, its settings in labelled groups. A blank
  // setting means "from the preset, the schema or the default"; choosing a preset fills the form with its values.
  var ACTIONS = ['flag', 'replace', 'reject'];
  var GROUPS = [
    {
      key: 'range',
      settings: [
        ['min', 'unit'],
        ['max', 'unit'],
        ['suspectMin', 'unit'],
        ['suspectMax', 'unit'],
        ['rangeAction', ACTIONS],
      ],
    },
    {
      key: 'spike',
      settings: [
        ['spike', 'switch'],
        ['spikeK', 'sigma'],
        ['spikeMinDeviation', 'unit'],
        ['spikeAction', ACTIONS],
      ],
    },
    {
      key: 'rate',
      settings: [
        ['maxRate', 'perSecond'],
        ['rateAction', ACTIONS],
      ],
    },
    {
      key: 'flat',
      settings: [
        ['flatCount', 'readings'],
        ['flatSeconds', 'seconds'],
        ['flatTolerance', 'unit'],
        ['flatAction', ACTIONS],
      ],
    },
    { key: 'shift', settings: [['shiftCount', 'readings']] },
    {
      key: 'cleaning',
      settings: [
        ['replaceWith', ['median', 'locf', 'linear']],
        ['impute', ['none', 'locf', 'mean', 'median', 'linear']],
        ['maxGapS', 'seconds'],
      ],
    },
  ];
  var presets = {};
  var nextId = 0;
  var translate = RED._; // replaced by the node's own catalog lookup when the dialog opens

  function t(key) {
    return translate('iotb-quality.' + key);
  }

  function forEachSetting(fn) {
    GROUPS.forEach(function (g) {
      g.settings.forEach(function (s) {
        fn(s[0], s[1]);
      });
    });
  }

  /** The input of a setting: a number box, an on/off switch or a choice ('' = preset or default). */
  function control(key, kind, id) {
    if (kind === 'switch')
      return $('<input/>', { type: 'checkbox', id: id, class: 'iotb-q-' + key, checked: true });
    if (Array.isArray(kind)) {
      var sel = $('<select/>', { id: id, class: 'iotb-q-' + key });
      $('<option/>', { value: '', text: t('editor.fromDefault') }).appendTo(sel);
      kind.forEach(function (o) {
        $('<option/>', { value: o, text: t('editor.option.' + o) }).appendTo(sel);
      });
      return sel;
    }
    return $('<input/>', {
      type: 'text',
      id: id,
      class: 'iotb-q-' + key,
      inputmode: 'decimal',
      placeholder: t('editor.fromDefault'),
    });
  }

  function setValue(row, key, value) {
    var el = row.find('.iotb-q-' + key);
    if (el.is(':checkbox')) el.prop('checked', value !== false);
    else el.val(value === undefined || value === null ? '' : String(value));
  }

  function getValue(row, key) {
    var el = row.find('.iotb-q-' + key);
    return el.is(':checkbox') ? el.prop('checked') : String(el.val()).trim();
  }

  /** What the preset says for a setting, as the form shows it ('' when the preset leaves it open). */
  function presetValue(name, key) {
    var rule = (presets[name] || { rule: {} }).rule;
    if (key === 'spike') return rule.spike !== false;
    return rule[key] === undefined ? '' : String(rule[key]);
  }

  function summary(row) {
    var field = getValue(row, 'field') || t('editor.noField');
    var preset = row.find('.iotb-q-preset option:selected').text();
    row.find('.iotb-q-summary').text(field + ' · ' + preset);
  }

  RED.nodes.registerType('iotb-quality', {
    category: 'IoT backend',
    color: '#a9d98b',
    defaults: {
      name: { value: '' },
      registry: { value: '', type: 'iotb-registry', required: false },
      rules: { value: [] },
      checkOtherFields: { value: true },
      window: { value: 7, validate: RED.validators.number() },
      maxFields: { value: 16, validate: RED.validators.number() },
      expectedIntervalS: { value: 0, validate: RED.validators.number() },
      fillGaps: { value: false },
      maxFill: { value: 10, validate: RED.validators.number() },
      ttlHours: { value: 24, validate: RED.validators.number() },
      persist: { value: true },
      saveIntervalS: { value: 60, validate: RED.validators.number() },
      scorecardIntervalS: { value: 0, validate: RED.validators.number() },
    },
    inputs: 1,
    outputs: 2,
    outputLabels: function (i) {
      return this._('iotb-quality.outputs.' + ['readings', 'rejected'][i]);
    },
    icon: 'font-awesome/fa-filter',
    paletteLabel: 'quality',
    label: function () {
      return this.name || 'quality';
    },
    oneditprepare: function () {
      translate = this._.bind(this);
      var list = $('#node-input-rule-container');
      list.editableList({
        addItem: function (row, index, rule) {
          var fresh = !rule || !rule.field;
          rule = rule || {};
          var uid = 'iotb-q-' + nextId++;
          row.addClass('iotb-q-rule');
          var head = $('<div/>', { class: 'iotb-q-head' }).appendTo(row);
          var toggle = $('<button/>', {
            type: 'button',
            class: 'red-ui-button red-ui-button-small iotb-q-toggle',
            title: t('editor.details'),
          })
            .append($('<i/>', { class: 'fa fa-caret-right' }))
            .appendTo(head);
          $('<span/>', { class: 'iotb-q-summary' }).appendTo(head);
          var body = $('<div/>', { class: 'iotb-q-body' }).appendTo(row);

          var top = $('<div/>', { class: 'iotb-q-grid' }).appendTo(body);
          var cell = function (grid, key, input, unit) {
            var c = $('<div/>', { class: 'iotb-q-cell' }).appendTo(grid);
            var label = $('<label/>', { for: input.attr('id') })
              .text(t('label.' + key))
              .appendTo(c);
            if (unit)
              $('<span/>', { class: 'iotb-q-unit' })
                .text(' (' + t('editor.unit.' + unit) + ')')
                .appendTo(label);
            if (input.is(':checkbox')) label.prepend(input.css({ width: 'auto', margin: '0 6px 0 0' }));
            else input.css({ width: '100%', boxSizing: 'border-box' }).appendTo(c);
            return c;
          };
          var field = $('<input/>', {
            type: 'text',
            id: uid + '-field',
            class: 'iotb-q-field',
            placeholder: t('editor.fieldName'),
          });
          cell(top, 'field', field);
          var preset = $('<select/>', { id: uid + '-preset', class: 'iotb-q-preset' });
          $('<option/>', { value: '', text: t('editor.noPreset') }).appendTo(preset);
          Object.keys(presets).forEach(function (k) {
            $('<option/>', { value: k, text: presets[k].label }).appendTo(preset);
          });
          cell(top, 'preset', preset);

          GROUPS.forEach(function (g) {
            var fs = $('<fieldset/>', { class: 'iotb-q-group iotb-q-group-' + g.key }).appendTo(body);
            $('<legend/>')
              .text(t('editor.group.' + g.key))
              .appendTo(fs);
            var grid = $('<div/>', { class: 'iotb-q-grid' }).appendTo(fs);
            g.settings.forEach(function (s) {
              var unit = typeof s[1] === 'string' && s[1] !== 'switch' ? s[1] : '';
              var c = cell(grid, s[0], control(s[0], s[1], uid + '-' + s[0]), unit);
              if (s[1] === 'switch') c.addClass('iotb-q-wide');
            });
          });

          // The preset's values in the form; the rule's own settings over them.
          field.val(rule.field || '');
          preset.val(rule.preset && presets[rule.preset] ? rule.preset : '');
          var shown = preset.val();
          forEachSetting(function (key) {
            setValue(
              row,
              key,
              rule[key] !== undefined && rule[key] !== '' ? rule[key] : presetValue(shown, key),
            );
          });
          // Choosing another preset replaces what the previous one filled in; what was typed stays.
          preset.on('change', function () {
            var next = preset.val();
            forEachSetting(function (key) {
              if (String(getValue(row, key)) === String(presetValue(shown, key)))
                setValue(row, key, presetValue(next, key));
            });
            shown = next;
            summary(row);
          });
          field.on('input', function () {
            summary(row);
          });
          var expand = function (open) {
            body.toggle(open);
            toggle.find('i').toggleClass('fa-caret-right', !open).toggleClass('fa-caret-down', open);
            toggle.attr('aria-expanded', open ? 'true' : 'false');
          };
          toggle.on('click', function () {
            expand(!body.is(':visible'));
          });
          expand(fresh);
          summary(row);
        },
        removable: true,
        sortable: true,
        height: 300,
      });
      var rules = this.rules || [];
      $.getJSON('iotb-quality/presets')
        .done(function (p) {
          presets = p;
        })
        .always(function () {
          rules.forEach(function (r) {
            list.editableList('addItem', r);
          });
        });
    },
    oneditsave: function () {
      var rules = [];
      $('#node-input-rule-container')
        .editableList('items')
        .each(function () {
          var row = $(this);
          var r = { field: getValue(row, 'field') };
          if (!r.field) return;
          var p = row.find('.iotb-q-preset').val();
          if (p) r.preset = p;
          // Only what differs from the preset is the rule's own: a later preset change still applies.
          forEachSetting(function (key, kind) {
            var v = getValue(row, key);
            if (v === '' || String(v) === String(presetValue(p, key))) return;
            // A number box that does not hold a number keeps the text: the runtime names the mistake at deploy.
            r[key] = kind === 'switch' || Array.isArray(kind) || isNaN(Number(v)) ? v : Number(v);
          });
          rules.push(r);
        });
      this.rules = rules;
    },
    oneditresize: function (size) {
      var rows = $('#dialog-form>div:not(.node-input-rule-container-row)');
      var height = size.height;
      rows.each(function () {
        height -= $(this).outerHeight(true);
      });
      $('#node-input-rule-container').editableList('height', Math.max(320, height - 30));
    },
  });
})();
