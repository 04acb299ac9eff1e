RED.nodes.registerType('iotb-influx-query', {
  category: 'IoT backend',
  color: '#cfa8e0',
  defaults: {
    name: { value: '' },
    influx: { value: '', type: 'iotb-influx', required: true },
    language: { value: 'influxql' },
    query: { value: 'SELECT * FROM telemetry WHERE device = $device AND time > now() - 1h' },
    params: { value: '{}' },
  },
  inputs: 1,
  outputs: 1,
  icon: 'font-awesome/fa-search',
  paletteLabel: 'influx query',
  label: function () {
    return this.name || 'influx query';
  },
});
