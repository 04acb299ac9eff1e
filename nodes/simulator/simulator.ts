import type { Node, NodeAPI, NodeDef } from 'node-red';
import { DeviceSimulator } from '../lib/simulator';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

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
    const glue = new NodeGlue(RED, this);
    const registry = glue.requireConfig('registry', config.registry);
    if (!registry) return;
    let sim: DeviceSimulator;
    try {
      sim = new DeviceSimulator(registry, {
        url: `mqtt://${config.host || '127.0.0.1'}:${numberSetting(config.port, { fallback: 1883, min: 1, max: 65_535, integer: true })}`,
        // Count and interval are checked by the simulator, which says what is wrong with them.
        count: numberSetting(config.count, { fallback: NaN }),
        idPrefix: config.idPrefix || 'sim',
        type: config.deviceType || 'sensor',
        intervalMs: numberSetting(config.intervalS, { fallback: NaN }) * 1000,
        seed: numberSetting(config.seed, { fallback: 1, above: 0 }),
      });
    } catch (err) {
      glue.cannotWork(glue.t('error.config', { message: (err as Error).message }), 'CONFIG_INVALID');
      return;
    }
    glue.onClose(() => sim.stop());
    let lastError = '';
    const status = glue.status(() => {
      const s = sim.stats();
      return {
        fill: s.connected === s.devices ? 'green' : 'yellow',
        shape: s.connected > 0 ? 'dot' : 'ring',
        key: 'status.running',
        vars: { ...s },
      };
    });
    sim.on('command', (c) => {
      this.send({ topic: `devices/${c.deviceId}/commands/executed`, payload: c });
    });
    sim.on('error', (err) => {
      // One line per distinct problem: a refused device retries every half second.
      if (err.message !== lastError) this.warn(glue.t('warn.device', { message: err.message }));
      lastError = err.message;
    });
    // Devices that cannot connect keep retrying; the status and the warnings above tell.
    sim.start().then(
      () => status.update(),
      () => undefined,
    );
    glue.every(1000, () => status.update());
  }
  RED.nodes.registerType('iotb-simulator', SimulatorNode);
};
