import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { RegistryHolder } from '../lib/registry/registry';
import { DeviceSimulator } from '../lib/simulator';

interface SimulatorNodeDef extends NodeDef {
  registry: string;
  host: string;
  port: number | string;
  count: number | string;
  idPrefix: string;
  deviceType: string;
  intervalS: number | string;
  seed: number | string;
}

/**
 * iotb-simulator: provisions simulated devices in the registry and runs each as a reference MQTT device
 * (nodes/lib/simulator.ts). Output: one message per command a device executed.
 */
export = function register(RED: NodeAPI): void {
  function SimulatorNode(this: Node, config: SimulatorNodeDef): void {
    RED.nodes.createNode(this, config);
    const registry = (RED.nodes.getNode(config.registry) as (Node & RegistryHolder) | null)?.registry;
    if (!registry) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-simulator.status.noRegistry' });
      this.error(RED._('iotb-simulator.error.noRegistry'));
      return;
    }
    let sim: DeviceSimulator;
    try {
      sim = new DeviceSimulator(registry, {
        url: `mqtt://${config.host || '127.0.0.1'}:${Number(config.port) || 1883}`,
        count: Number(config.count),
        idPrefix: config.idPrefix || 'sim',
        type: config.deviceType || 'sensor',
        intervalMs: Number(config.intervalS) * 1000,
        seed: Number(config.seed) || 1,
      });
    } catch (err) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-simulator.status.invalid' });
      this.error(RED._('iotb-simulator.error.config', { message: (err as Error).message }));
      return;
    }
    let lastError = '';
    const showStatus = (): void => {
      const s = sim.stats();
      this.status({
        fill: s.connected === s.devices ? 'green' : 'yellow',
        shape: s.connected > 0 ? 'dot' : 'ring',
        text: RED._('iotb-simulator.status.running', { ...s }),
      });
    };
    sim.on('command', (c) => {
      this.send({ topic: `devices/${c.deviceId}/commands/executed`, payload: c });
    });
    sim.on('error', (err) => {
      // One line per distinct problem: a refused device retries every half second.
      if (err.message !== lastError) this.warn(RED._('iotb-simulator.warn.device', { message: err.message }));
      lastError = err.message;
    });
    // Devices that cannot connect keep retrying; the status and the warnings above tell.
    sim.start().then(showStatus, () => undefined);
    const timer = setInterval(showStatus, 1000);
    this.on('close', (done: () => void) => {
      clearInterval(timer);
      sim.stop().then(done, done);
    });
  }
  RED.nodes.registerType('iotb-simulator', SimulatorNode);
};
