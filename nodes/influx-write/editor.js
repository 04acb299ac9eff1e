RED.nodes.registerType('iotb-influx-write', {
  category: 'IoT backend',
  color: '#cfa8e0',
  defaults: {
    name: { value: '' },
    influx: { value: '', type: 'iotb-influx', required: true },
    measurement: { value: 'telemetry' },
    integerFields: { value: '' },
    batchRecords: { value: 5000, validate: RED.validators.number() },
    flushIntervalMs: { value: 1000, validate: RED.validators.number() },
    spoolMaxMB: { value: 1024, validate: RED.validators.number() },
    whenFull: { value: 'refuse' },
    fsync: { value: 'interval' },
    closeTimeoutS: { value: 5, validate: RED.validators.number() },
    statsIntervalS: { value: 0, validate: RED.validators.number() },
    confirm: { value: false },
  },
  inputs: 1,
  outputs: 3,
  outputLabels: function (i) {
    return this._('iotb-influx-write.outputs.' + ['accepted', 'rejected', 'stats'][i]);
  },
  icon: 'db.svg',
  align: 'right',
  paletteLabel: 'influx write',
  label: function () {
    return this.name || 'influx write';
  },
});
