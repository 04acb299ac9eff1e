#!/usr/bin/env bash
# Installs Debian packages (as root), only what is missing, `apt-get update` once.
#   --runtime   what `npm start` needs: InfluxDB 1.x (influxd, started by npm start under the user dir) and the
#               Mosquitto clients (mosquitto_pub/sub, used by the README's quick start)
#   (default)   also what the tests run for real: the influx CLI, Mosquitto, VictoriaMetrics, Chromium,
#               Prometheus and Alertmanager
# The packages' system services are stopped: npm start and the tests start their own instances on free ports.
set -euo pipefail
runtime_only=false
case "${1:-}" in
  --runtime) runtime_only=true ;;
  '') ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac
need=()
command -v influxd >/dev/null || [ -x /usr/bin/influxd ] || need+=(influxdb)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
if ! $runtime_only; then
  command -v influx >/dev/null || need+=(influxdb-client)
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need+=(mosquitto)
  command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
  command -v chromium >/dev/null || need+=(chromium)
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if command -v systemctl >/dev/null; then
  for svc in influxdb mosquitto victoria-metrics prometheus prometheus-alertmanager; do systemctl stop "$svc" >/dev/null 2>&1 || true; done
fi
