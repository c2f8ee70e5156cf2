# Sourced by the bench scripts, from the repository root: HARNESS (the
# shared harness unless set) and BIN, the agent under test — the binary
# given in BIN, or else a copy of a fresh release build (a copy, so that a
# build during the run does not change what is measured).
HARNESS=${HARNESS:-../shared/bench/bench-collector.sh}
if [[ -z ${BIN:-} ]]; then
  cargo build --release --bin tcp-info >&2
  BIN=$(mktemp /tmp/tcp-info-bench.XXXXXX)
  cp "${CARGO_TARGET_DIR:-target}/release/tcp-info" "$BIN"
  chmod 755 "$BIN"
fi
