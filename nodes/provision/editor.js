RED.nodes.registerType('iotb-provision', {
  category: 'IoT backend',
  color: '#87c5eb',
  defaults: {
    name: { value: '' },
    registry: { value: '', type: 'iotb-registry', required: true },
    broker: { value: '', type: 'iotb-broker', required: false },
    operation: { value: 'msg' },
  },
  inputs: 1,
  outputs: 2,
  outputLabels: function (i) {
    return this._('iotb-provision.outputs.' + ['done', 'refused'][i]);
  },
  icon: 'font-awesome/fa-address-book',
  paletteLabel: 'provision',
  label: function () {
    return (
      this.name || (this.operation && this.operation !== 'msg' ? 'provision: ' + this.operation : 'provision')
    );
  },
  oneditprepare: function () {
    var sel = $('#node-input-operation');
    // The operations the runtime knows (nodes/lib/provision/operations.ts), exported through the node's settings.
    (RED.settings.iotbProvisionOperations || []).forEach(function (op) {
      $('<option>').val(op).text(op).appendTo(sel);
    });
    sel.val(this.operation || 'msg');
  },
});
