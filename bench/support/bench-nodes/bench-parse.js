// Benchmark-only node (never shipped): parses a Buffer or string payload with JSON.parse and forwards the
// message, nothing else. It is the ceiling for any node that must read JSON telemetry: what Node-RED's
// routing plus the UTF-8 decode and JSON.parse alone leave of a pass-through node's rate.
'use strict';
module.exports = function register(RED) {
  function BenchParseNode(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      try {
        msg.payload = JSON.parse(
          typeof msg.payload === 'string' ? msg.payload : msg.payload.toString('utf8'),
        );
        send(msg);
        done();
      } catch (err) {
        done(err);
      }
    });
  }
  RED.nodes.registerType('bench-parse', BenchParseNode);
};
