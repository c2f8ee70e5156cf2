#!/usr/bin/env bash
# The project's test command (README "Quick start"; CI runs it through .ci/run).
# `cargo test` alone runs the tests that need neither root nor system tools;
# this runs those and the kernel tests (tests/kernel, not a default member:
# `--workspace` takes them in). Needs root: the kernel tests create network
# namespaces. Installs the Debian packages they drive when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v zstd >/dev/null || need+=(zstd)
command -v ss >/dev/null || need+=(iproute2)
command -v ip >/dev/null || need+=(iproute2)
command -v inotifywait >/dev/null || need+=(inotify-tools)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prlimit >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
# Deployment tests: the image (buildah, FROM scratch, no registry), compose
# v1's validator, the .deb's unit check, the binaries' ELF headers.
command -v buildah >/dev/null || need+=(buildah)
command -v crun >/dev/null || command -v runc >/dev/null || need+=(crun)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v readelf >/dev/null || need+=(binutils)
# csvtool_extended blackholes a connection with iptables.
command -v iptables >/dev/null || need+=(iptables)
# The BPF poll mode's build (changescan/build.rs, libbpf-sys).
command -v clang >/dev/null || need+=(clang)
command -v make >/dev/null || need+=(make)
command -v pkg-config >/dev/null || need+=(pkg-config)
[[ -e /usr/include/bpf/bpf_helpers.h ]] || need+=(libbpf-dev)
pkg-config --exists libelf 2>/dev/null || need+=(libelf-dev)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
# The BPF fallback test drops capabilities with setpriv.
command -v setpriv >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "test.sh: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Kubernetes' schema for the manifests, and cargo-deb for the package test
# (pinned: a few minutes of compiling, once per machine).
if ! command -v kubernetes-validate >/dev/null; then
  python3 -m pip install --quiet kubernetes-validate==1.37.0 \
    || python3 -m pip install --quiet --break-system-packages kubernetes-validate==1.37.0
fi
if ! command -v cargo-deb >/dev/null; then
  cargo install --quiet --locked cargo-deb
fi
# csvtool_parquet and csvtool_extended read csvtool's Parquet with DuckDB
# and pyarrow, as analysts would.
if ! python3 -c 'import duckdb, pyarrow' 2>/dev/null; then
  python3 -m pip --version >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; }
  python3 -m pip install --quiet duckdb pyarrow \
    || python3 -m pip install --quiet --break-system-packages duckdb pyarrow
fi

# The kernel tests would build the agent on first use; built here, every
# binary is ready before any test starts.
cargo build --workspace --release --bins
cargo test --workspace --release "$@"
