import type { Node } from 'node-red';
import type { InfluxConnection } from '../lib/influx/connection';
import type { ConfigProblemHolder } from '../lib/config-check';

export interface InfluxCredentials {
  token?: string;
  username?: string;
  password?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/** What the write and query nodes get from `RED.nodes.getNode(config.influx)`. */
export interface InfluxConfigNode extends Node<InfluxCredentials>, ConfigProblemHolder {
  /** The connection every user of this config node shares; closed when the config node closes. Unset when a
   * setting is invalid (`configProblem` says which). */
  connection?: InfluxConnection;
}
