// Benchmark-only nodes (loaded by bench/support/node-red-rate.ts, never shipped).
// - bench-pass forwards every message unchanged. It is the baseline a measured node is compared with, and
//   also the source and sink around it, so both paths pay the same Node-RED routing cost.
// - bench-parse parses a Buffer or string payload with JSON.parse and forwards the message, nothing else: the
//   ceiling for any node that must read JSON telemetry (Node-RED's routing plus the decode and JSON.parse).
'use strict';
module.exports = function register(RED) {
  function BenchPassNode(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      send(msg);
      done();
    });
  }
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
  RED.nodes.registerType('bench-pass', BenchPassNode);
  RED.nodes.registerType('bench-parse', BenchParseNode);
};
