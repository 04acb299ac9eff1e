/**
 * Checks of config node settings before they are used, so a flow imported without its environment
 * variables, or with a mistyped URL or port, says which setting is wrong and which variable to set, instead
 * of a raw `TypeError: Invalid URL` or `getaddrinfo ENOTFOUND ${IOTB_MQTT_HOST}` from deep inside a client.
 *
 * Node-RED replaces a property that is exactly `${NAME}` by the environment variable NAME when it is set,
 * and leaves the text as it is when it is not; `${NAME}` inside a longer text becomes empty when unset.
 */

/** What a config node holds for its dependent nodes: set when a setting cannot work, with the reason. */
export interface ConfigProblemHolder {
  configProblem?: string;
}

export interface SettingProblem {
  /** The setting as the edit dialog names it, e.g. "URL". */
  setting: string;
  /** The environment variable the setting refers to and that is not set, if any. */
  envVar?: string;
  /** What is wrong with the value, e.g. "is not a URL". */
  reason: string;
}

const ENV_REF = /\$\{([^}\s]+)\}/;

/** The name of the environment variable a value still refers to (Node-RED found no value for it). */
export function unresolvedEnvVar(value: unknown): string | undefined {
  return typeof value === 'string' ? ENV_REF.exec(value)?.[1] : undefined;
}

/** A check of one value: the reason it cannot work, or undefined. */
export type ValueCheck = (value: string) => string | undefined;

/**
 * Checks one setting: an unresolved `${VAR}` is reported as the missing variable, anything else by `check`.
 * Numbers (a port typed into a number field) are checked as their text.
 */
export function checkSetting(setting: string, value: unknown, check: ValueCheck): SettingProblem | undefined {
  const envVar = unresolvedEnvVar(value);
  if (envVar !== undefined) return { setting, envVar, reason: `environment variable ${envVar} is not set` };
  const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
  const reason = check(text.trim());
  return reason === undefined ? undefined : { setting, reason };
}

/** "URL: environment variable IOTB_INFLUX_URL is not set", 'Port "x" is not a port (1-65535)'. */
export function describeProblem(p: SettingProblem): string {
  return p.envVar === undefined ? `${p.setting} ${p.reason}` : `${p.setting}: ${p.reason}`;
}

/** The first problem of several checks, described; undefined when every setting is fine. */
export function firstProblem(...problems: (SettingProblem | undefined)[]): string | undefined {
  const p = problems.find((x) => x !== undefined);
  return p && describeProblem(p);
}

export const required: ValueCheck = (v) => (v === '' ? 'is empty' : undefined);

/** An http(s) URL with a host. */
export const httpUrl: ValueCheck = (v) => {
  if (v === '') return 'is empty';
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return `"${v}" is not a URL (e.g. http://127.0.0.1:8086)`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `"${v}" must start with http:// or https://`;
  return undefined;
};

/** A TCP port, or empty for the node's default. */
export const optionalPort: ValueCheck = (v) => {
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? undefined : `"${v}" is not a port (1-65535)`;
};

/** A host name or address to listen on, or empty for the node's default. */
export const optionalHost: ValueCheck = (v) =>
  /[\s/]/.test(v) ? `"${v}" is not a host name or address` : undefined;
