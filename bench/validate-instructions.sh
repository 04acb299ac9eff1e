#!/usr/bin/env bash
# Instructions per reading of the validation benchmark's cases, counted by callgrind (valgrind): unlike a rate,
# a count is the same whatever else the machine is doing. Each case runs twice, with 0 and with COUNT
# readings; the difference divided by COUNT is the per-reading cost (start-up and compilation cancel out).
#
#   npm run build && bash bench/validate-instructions.sh     # needs valgrind (Debian: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-200000}
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    node --import tsx bench/support/validate-loop.ts "$1" "$2" 2>&1 | awk '/Collected/ { print $4 }'
}
for name in json-parse floor floor-copy validate; do
  base=$(instructions "$name" 0)
  total=$(instructions "$name" "$COUNT")
  echo "$name: $(((total - base) / COUNT)) instructions per reading"
done
