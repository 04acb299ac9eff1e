RED.nodes.registerType('iotb-twin', {
  category: 'IoT backend',
  color: '#f2a66b',
  defaults: {
    name: { value: '' },
    broker: { value: '', type: 'iotb-broker', required: true },
    changes: { value: true },
  },
  inputs: 1,
  outputs: 4,
  outputLabels: function (i) {
    return this._('iotb-twin.outputs.' + ['changes', 'events', 'answers', 'refused'][i]);
  },
  icon: 'font-awesome/fa-clone',
  paletteLabel: 'twin',
  label: function () {
    return this.name || 'twin';
  },
});
