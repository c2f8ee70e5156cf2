#!/usr/bin/env bash
# The project's test command (README "Quick start"; CI runs it through .ci/run).
# Installs the Debian packages the tests drive when they are missing, then
# runs the whole workspace's tests. Needs root: the tests create network
# namespaces and read every socket's tcp_info.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v zstd >/dev/null || need+=(zstd)
command -v ss >/dev/null || need+=(iproute2)
command -v ip >/dev/null || need+=(iproute2)
command -v inotifywait >/dev/null || need+=(inotify-tools)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus >/dev/null || need+=(prometheus)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "test.sh: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --workspace --release --bins
cargo test --workspace --release "$@"
