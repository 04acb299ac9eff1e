(function () {
  // Which inputs a rule kind uses (the others are hidden in its row).
  var USES = {
    threshold: ['raise', 'clear', 'raiseFor', 'clearFor'],
    absence: ['silentS'],
    rate: ['field', 'windowS', 'raise', 'clear', 'raiseFor', 'clearFor'],
    quality: ['windowS', 'minReadings', 'raise', 'clear', 'raiseFor', 'clearFor'],
    fleet: ['member', 'silentS', 'raise', 'clear', 'raiseFor', 'clearFor'],
  };
  // Replaced by the edited node's own catalog lookup when the dialog opens (RED._ would show the key).
  var t = function (key) {
    return key;
  };
  var KINDS = Object.keys(USES);
  var SEVERITIES = ['critical', 'major', 'minor', 'warning', 'indeterminate'];

  function box(cls, placeholder, width, value, title) {
    return $('<input/>', {
      type: 'text',
      class: 'iotb-a-' + cls,
      placeholder: placeholder,
      title: title || placeholder,
      style: 'width: ' + width,
    }).val(value === undefined || value === null ? '' : value);
  }
  function labelled(text, input, unit) {
    var span = $('<span/>', {
      class: 'iotb-a-part',
      style: 'display: inline-flex; gap: 4px; align-items: center; margin-right: 10px',
    });
    $('<span/>', { text: text, style: 'min-width: 60px' }).appendTo(span);
    input.appendTo(span);
    if (unit) $('<span/>', { text: unit }).appendTo(span);
    return span;
  }
  function text(c) {
    if (c === undefined || c === null) return '';
    if (typeof c === 'string') return c;
    return JSON.stringify(c);
  }

  function rowRule(row) {
    var r = {
      name: row.find('.iotb-a-name').val().trim(),
      kind: row.find('.iotb-a-kind').val(),
      severity: row.find('.iotb-a-severity').val(),
    };
    var type = row.find('.iotb-a-deviceType').val().trim();
    if (type) r.deviceType = type;
    var uses = USES[r.kind];
    ['raise', 'clear', 'member', 'field'].forEach(function (k) {
      var v = row
        .find('.iotb-a-' + k)
        .val()
        .trim();
      if (v && uses.indexOf(k) >= 0) r[k] = v;
    });
    [
      ['raiseForS', 'raiseFor'],
      ['raiseForReadings', 'raiseFor'],
      ['clearForS', 'clearFor'],
      ['clearForReadings', 'clearFor'],
      ['windowS', 'windowS'],
      ['minReadings', 'minReadings'],
      ['silentS', 'silentS'],
    ].forEach(function (p) {
      var v = row
        .find('.iotb-a-' + p[0])
        .val()
        .trim();
      if (v !== '' && uses.indexOf(p[1]) >= 0) r[p[0]] = Number(v);
    });
    return r;
  }

  function collect() {
    var rules = [];
    $('#node-input-rule-container')
      .editableList('items')
      .each(function () {
        var r = rowRule($(this));
        if (r.name) rules.push(r);
      });
    return rules;
  }

  // The runtime's own validation (nodes/lib/alarms): the message names the rule and what is wrong.
  var pending;
  function check() {
    clearTimeout(pending);
    pending = setTimeout(function () {
      $.ajax({
        url: 'iotb-alarm/validate',
        type: 'POST',
        contentType: 'application/json',
        data: JSON.stringify({ rules: collect() }),
      }).done(function (res) {
        $('#iotb-alarm-check')
          .text(
            res.error
              ? res.error
              : t('valid', { count: res.rules }) + (res.rules ? ': ' + res.summaries.join(' · ') : ''),
          )
          .css(
            'color',
            res.error ? 'var(--red-ui-text-color-error, #c00)' : 'var(--red-ui-secondary-text-color, #666)',
          );
      });
    }, 300);
  }

  RED.nodes.registerType('iotb-alarm', {
    category: 'IoT backend',
    color: '#7fd3c2',
    defaults: {
      name: { value: '' },
      registry: { value: '', type: 'iotb-registry', required: false },
      rules: { value: [] },
      tickS: { value: 5, validate: RED.validators.number() },
      persist: { value: true },
      maxDevices: { value: 100000, validate: RED.validators.number() },
    },
    inputs: 1,
    outputs: 3,
    outputLabels: function (i) {
      return this._('iotb-alarm.outputs.' + ['transitions', 'points', 'answers'][i]);
    },
    icon: 'font-awesome/fa-bell',
    paletteLabel: 'alarm',
    label: function () {
      return this.name || 'alarm';
    },
    oneditprepare: function () {
      var node = this;
      t = function (key, values) {
        return node._('iotb-alarm.editor.' + key, values);
      };
      var list = $('#node-input-rule-container');
      list.editableList({
        addItem: function (row, index, rule) {
          rule = rule || { kind: 'threshold', severity: 'major' };
          var head = $('<div/>', {
            style: 'display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 4px',
          }).appendTo(row);
          box('name', t('placeholder.name'), '140px', rule.name).appendTo(head);
          var kind = $('<select/>', { class: 'iotb-a-kind', style: 'width: 100px' }).appendTo(head);
          KINDS.forEach(function (k) {
            $('<option/>', { value: k, text: k }).appendTo(kind);
          });
          kind.val(rule.kind || 'threshold');
          var sev = $('<select/>', { class: 'iotb-a-severity', style: 'width: 120px' }).appendTo(head);
          SEVERITIES.forEach(function (s) {
            $('<option/>', { value: s, text: s }).appendTo(sev);
          });
          sev.val(rule.severity || 'major');
          box(
            'deviceType',
            t('placeholder.deviceType'),
            '130px',
            rule.deviceType,
            t('title.deviceType'),
          ).appendTo(head);
          var hint = $('<div/>', {
            class: 'iotb-a-hint',
            style: 'font-size: 0.85em; color: var(--red-ui-secondary-text-color, #666); margin-bottom: 4px',
          }).appendTo(row);
          var body = $('<div/>', { style: 'display: flex; flex-wrap: wrap; row-gap: 4px' }).appendTo(row);
          labelled(t('part.field'), box('field', 'battery', '100px', rule.field))
            .attr('data-use', 'field')
            .appendTo(body);
          labelled(
            t('part.member'),
            box('member', 'status == "offline"', '200px', text(rule.member), t('title.member')),
          )
            .attr('data-use', 'member')
            .appendTo(body);
          labelled(t('part.raise'), box('raise', 'temperature > -10', '260px', text(rule.raise)))
            .attr('data-use', 'raise')
            .appendTo(body);
          labelled(t('part.for'), box('raiseForS', '0', '60px', rule.raiseForS), 's')
            .attr('data-use', 'raiseFor')
            .appendTo(body);
          labelled(
            t('part.and'),
            box('raiseForReadings', '0', '50px', rule.raiseForReadings),
            t('unit.readings'),
          )
            .attr('data-use', 'raiseFor')
            .appendTo(body);
          $('<div/>', { style: 'flex-basis: 100%' }).appendTo(body);
          labelled(t('part.clear'), box('clear', t('placeholder.clear'), '260px', text(rule.clear)))
            .attr('data-use', 'clear')
            .appendTo(body);
          labelled(t('part.for'), box('clearForS', '0', '60px', rule.clearForS), 's')
            .attr('data-use', 'clearFor')
            .appendTo(body);
          labelled(
            t('part.and'),
            box('clearForReadings', '0', '50px', rule.clearForReadings),
            t('unit.readings'),
          )
            .attr('data-use', 'clearFor')
            .appendTo(body);
          labelled(t('part.window'), box('windowS', '600', '70px', rule.windowS), 's')
            .attr('data-use', 'windowS')
            .appendTo(body);
          labelled(t('part.atLeast'), box('minReadings', '10', '50px', rule.minReadings), t('unit.readings'))
            .attr('data-use', 'minReadings')
            .appendTo(body);
          labelled(t('part.silentFor'), box('silentS', '3600', '70px', rule.silentS), 's')
            .attr('data-use', 'silentS')
            .appendTo(body);
          kind.on('change', function () {
            var uses = USES[kind.val()];
            body.children('[data-use]').each(function () {
              $(this).toggle(uses.indexOf($(this).attr('data-use')) >= 0);
            });
            hint.text(t('hint.' + kind.val()));
          });
          kind.trigger('change');
          row.on('change keyup', 'input, select', check);
        },
        removeItem: check,
        removable: true,
        sortable: true,
        height: 320,
      });
      (this.rules || []).forEach(function (r) {
        list.editableList('addItem', r);
      });
      check();
    },
    oneditsave: function () {
      this.rules = collect();
    },
    oneditresize: function (size) {
      var rows = $('#dialog-form>div:not(.node-input-rule-container-row)');
      var height = size.height;
      rows.each(function () {
        height -= $(this).outerHeight(true);
      });
      $('#node-input-rule-container').editableList('height', Math.max(200, height - 30));
    },
  });
})();
