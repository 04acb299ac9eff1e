import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkSetting,
  firstProblem,
  httpUrl,
  optionalHost,
  optionalPort,
  required,
  unresolvedEnvVar,
} from '../../nodes/lib/config-check';

describe('config-check', () => {
  it('finds the variable an unresolved ${NAME} still names, and nothing in a resolved value', () => {
    assert.equal(unresolvedEnvVar('${IOTB_INFLUX_URL}'), 'IOTB_INFLUX_URL');
    assert.equal(unresolvedEnvVar('http://${HOST}:8086'), 'HOST');
    assert.equal(unresolvedEnvVar('http://127.0.0.1:8086'), undefined);
    assert.equal(unresolvedEnvVar(1883), undefined);
  });

  it('names the setting and the variable, or the setting and what is wrong with its value', () => {
    assert.deepEqual(checkSetting('URL', '${IOTB_INFLUX_URL}', httpUrl), {
      setting: 'URL',
      envVar: 'IOTB_INFLUX_URL',
      reason: 'environment variable IOTB_INFLUX_URL is not set',
    });
    assert.equal(
      firstProblem(
        checkSetting('URL', 'http://127.0.0.1:8086', httpUrl),
        checkSetting('Port', '0', optionalPort),
      ),
      'Port "0" is not a port (1-65535)',
    );
    assert.equal(
      firstProblem(checkSetting('URL', 'ftp://x', httpUrl)),
      'URL "ftp://x" must start with http:// or https://',
    );
    assert.equal(
      firstProblem(checkSetting('URL', 'nonsense', httpUrl)),
      'URL "nonsense" is not a URL (e.g. http://127.0.0.1:8086)',
    );
    assert.equal(firstProblem(checkSetting('Database', '', required)), 'Database is empty');
    assert.equal(
      firstProblem(checkSetting('Host', 'a b', optionalHost)),
      'Host "a b" is not a host name or address',
    );
  });

  it('accepts the values that work, and empty optional ones (the node default applies)', () => {
    assert.equal(
      firstProblem(
        checkSetting('URL', 'https://influx.example:8086/', httpUrl),
        checkSetting('Port', 1883, optionalPort),
        checkSetting('Port', '', optionalPort),
        checkSetting('Host', '', optionalHost),
        checkSetting('Host', '::1', optionalHost),
        checkSetting('Database', 'iot', required),
      ),
      undefined,
    );
  });
});
