// Pass-through node for benchmarks only (loaded by bench/support/node-red-rate.ts, never shipped):
// forwards every message unchanged. It is the baseline a measured node is compared with, and also the
// source and sink around it, so both paths pay the same Node-RED routing cost.
'use strict';
module.exports = function register(RED) {
  function BenchPassNode(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      send(msg);
      done();
    });
  }
  RED.nodes.registerType('bench-pass', BenchPassNode);
};
