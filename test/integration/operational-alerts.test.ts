/**
 * The shipped operational alerts end to end with real servers: Prometheus scrapes the backend's GET /metrics
 * and evaluates prometheus/iotb-rules.yml; while influxd is stopped, readings pile up in the spool and
 * IotbSpoolGrowing fires; Alertmanager delivers it to the backend's webhook route (operator key from a
 * credentials file, as in prometheus/alertmanager.example.yml), where it becomes an alarm; once influxd is
 * back, the spool drains, the alert resolves and the alarm clears. The rule file's durations and windows are
 * shortened to seconds for the test; the expressions are the shipped ones.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBackend, type Backend } from '../support/backend';
import { eventually, repoRoot, startAlertmanager, startPrometheus, type Server } from '../support/servers';

/** The shipped rules with `for:` and range windows in seconds, so a test sees them fire and resolve. */
function fastRules(): string {
  return readFileSync(join(repoRoot, 'prometheus', 'iotb-rules.yml'), 'utf8')
    .replace(/for: \d+m/g, 'for: 2s')
    .replace(/\[\d+m\]/g, '[10s]');
}

describe('operational alerts: Prometheus → Alertmanager → backend webhook', () => {
  let b: Backend;
  let prometheus: Server | undefined;
  let alertmanager: Server | undefined;
  before(async () => {
    b = await startBackend();
    alertmanager = await startAlertmanager(
      [
        'route: { receiver: iotb, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h }',
        'receivers:',
        '  - name: iotb',
        '    webhook_configs:',
        `      - url: ${b.nr.url}/api/alertmanager`,
        '        send_resolved: true',
        '        http_config: { authorization: { type: Bearer, credentials_file: operator-key } }',
      ].join('\n'),
      { 'operator-key': b.operatorKey }, // relative to the config file, as Alertmanager resolves it
    );
  });
  after(async () => {
    await prometheus?.stop();
    await alertmanager?.stop();
    await b?.stop();
  });

  it('fires IotbSpoolGrowing while influxd is down, delivers it as an alarm, and clears it when influxd is back', async () => {
    const host = new URL(b.nr.url).host;
    prometheus = await startPrometheus(
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'rule_files: [iotb-rules.yml]',
        `alerting: { alertmanagers: [{ static_configs: [{ targets: ['${new URL(alertmanager!.url).host}'] }] }] }`,
        `scrape_configs: [{ job_name: iotb, static_configs: [{ targets: ['${host}'] }] }]`,
      ].join('\n'),
      { 'iotb-rules.yml': fastRules() },
    );
    const created = await b.api('POST', '/api/devices', { body: { id: 'pump-1', type: 'sensor' } });
    const key = created.body.token as string;
    const spoolAlarm = async (state: string) => {
      const r = await b.api('GET', `/api/alarms?device=backend&state=${state}`);
      return (r.body as Record<string, any>[]).find((a) => a.rule === 'IotbSpoolGrowing');
    };

    await b.influx.pause();
    let sent = 0;
    const feeder = setInterval(() => {
      void b.api('POST', '/api/devices/pump-1/telemetry', { key, body: { temperature: 20 + (sent++ % 5) } });
    }, 250);
    let fired: Record<string, any>;
    try {
      fired = await eventually('IotbSpoolGrowing delivered as an alarm', () => spoolAlarm('active'), 90_000);
    } finally {
      clearInterval(feeder);
    }
    assert.equal(fired.kind, 'external');
    assert.equal(fired.severity, 'major');
    assert.match(fired.summary, /InfluxDB writer \S+ holds \d+ unstored points/);

    await b.influx.start();
    const cleared = await eventually(
      'the resolved alert clearing the alarm',
      async () => {
        const r = await b.api('GET', `/api/alarms/${fired.id}`);
        return r.body.state === 'CLEARED_UNACK' ? (r.body as Record<string, any>) : undefined;
      },
      90_000,
    );
    assert.ok(cleared.clearTs >= fired.startTs);
    assert.equal(
      (await b.api('GET', '/api/alarms?device=backend&state=active')).body.filter(
        (a: any) => a.rule === 'IotbSpoolGrowing',
      ).length,
      0,
    );
  });
});
