#!/usr/bin/env bash
# Installs the Debian packages the tests run for real (as root): InfluxDB 1.x, Mosquitto, VictoriaMetrics,
# Chromium, Prometheus and Alertmanager. Only what is missing; `apt-get update` once. Their system services
# are stopped: tests start their own instances on free ports.
set -euo pipefail
need=()
command -v influxd >/dev/null || need+=(influxdb)
command -v influx >/dev/null || need+=(influxdb-client)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need+=(mosquitto)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v chromium >/dev/null || need+=(chromium)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if command -v systemctl >/dev/null; then
  for svc in influxdb mosquitto victoria-metrics prometheus prometheus-alertmanager; do systemctl stop "$svc" >/dev/null 2>&1 || true; done
fi
