import { existsSync, readFileSync } from 'node:fs';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { writeFileAtomicSync } from '../lib/atomic-file';
import { DEVICE_ID_PATTERN, TYPE_NAME_PATTERN } from '../lib/device-id';
import { generateRegistrySecret } from '../lib/registry/credentials';
import { FileDeviceStore } from '../lib/registry/file-store';
import { Registry, type RegistryHolder } from '../lib/registry/registry';
import { credentialsOf, NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface TypeRow {
  name: string;
  schema?: string;
  commands?: string;
  alarms?: string;
}

interface RegistryNodeDef extends NodeDef {
  file: string;
  rotationGraceS: number | string;
  types?: TypeRow[];
}

interface RegistryCredentials {
  secret?: string;
  apiKey?: string;
}

type RegistryConfigNode = Node<RegistryCredentials> & RegistryHolder;

/**
 * iotb-registry: owns one device registry (state file in the Node-RED user dir, HMAC secret in the node's
 * credentials). Other nodes reach it as `RED.nodes.getNode(config.registry).registry`.
 */
export = function register(RED: NodeAPI): void {
  function RegistryNode(this: RegistryConfigNode, config: RegistryNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const credentials = credentialsOf(this);
    const file = glue.userFile(config.file || 'iotb-registry.json');
    try {
      const secret =
        credentials.secret ||
        fileSecret(`${file}.secret`, () =>
          this.warn(glue.t('warn.generatedSecret', { file: `${file}.secret` })),
        );
      const graceS = numberSetting(config.rotationGraceS, { fallback: undefined, min: 0 });
      const registry = new Registry(new FileDeviceStore(file), secret, {
        rotationGraceMs: graceS === undefined ? undefined : graceS * 1000,
        operatorKey: credentials.apiKey || undefined,
      });
      this.registry = registry;
      for (const row of config.types ?? []) {
        try {
          registry.putType({
            name: row.name,
            schema: parseJson(row.schema, 'schema'),
            commands: parseJson(row.commands, 'commands'),
            alarms: parseJson(row.alarms, 'alarms'),
          });
        } catch (err) {
          this.error(glue.t('error.type', { name: row.name, message: (err as Error).message }));
        }
      }
      this.log(glue.t('log.opened', { file, devices: registry.size }));
    } catch (err) {
      this.error(glue.t('error.open', { file, message: (err as Error).message }));
    }
    glue.onClose(() => {
      this.registry?.close();
      this.registry = undefined;
    });
  }
  RED.nodes.registerType<RegistryConfigNode, RegistryNodeDef, unknown, RegistryCredentials>(
    'iotb-registry',
    RegistryNode,
    {
      credentials: { secret: { type: 'password' }, apiKey: { type: 'password' } },
      // The editor checks ids and type names with the runtime's own patterns (RED.settings.iotbRegistry...).
      settings: {
        iotbRegistryDeviceIdPattern: { value: DEVICE_ID_PATTERN.source, exportable: true },
        iotbRegistryTypeNamePattern: { value: TYPE_NAME_PATTERN.source, exportable: true },
      },
    },
  );
};

function parseJson(text: string | undefined, what: string): Record<string, unknown> | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Without a secret in the node's credentials (e.g. a flow deployed from a file), the registry uses one
 * generated once and kept beside its state file, owner-readable only: the same secret must come back on
 * every start, or no stored token verifies.
 */
function fileSecret(path: string, onGenerate: () => void): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const secret = generateRegistrySecret();
  writeFileAtomicSync(path, secret, 0o600);
  onGenerate();
  return secret;
}
