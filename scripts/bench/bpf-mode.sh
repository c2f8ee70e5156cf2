#!/usr/bin/env bash
# The in-kernel change detection (-poll.mode=bpf) side by side with the
# complete dump (-poll.mode=dump): for each N and each mode, one run of
# ../shared/bench/bench-collector.sh with ACTIVE of the connections sending
# (16 B every 100 ms), printing CPU (user/sys), CPU per poll, the achieved
# interval, peak RSS, the snapshots each mode queued for the archive, and in
# bpf mode how many polls read only the changed sockets, how many were
# complete dumps and how many sockets the iterator reported. Needs root.
# Measures CPU: run it on a quiet machine.
#
#   scripts/bench/bpf-mode.sh [SECONDS] [ACTIVE] [N...]   (default: 20 s; 0.10; 1000 5000 10000)
#   FULL_INTERVAL=1s (default) sets -poll.full-interval for the bpf runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
HARNESS=${HARNESS:-../shared/bench/bench-collector.sh}
SECS=${1:-20}; shift || true
ACTIVE=${1:-0.10}; shift || true
NS=("$@"); ((${#NS[@]})) || NS=(1000 5000 10000)
FULL_INTERVAL=${FULL_INTERVAL:-1s}
cargo build --release --bin tcp-info >&2
BIN=$(mktemp /tmp/tcp-info-bench.XXXXXX); cp "${CARGO_TARGET_DIR:-target}/release/tcp-info" "$BIN"; chmod 755 "$BIN"
OUT=$(mktemp -d /tmp/bpf-mode-bench.XXXXXX)
get() { awk -F= -v k="$1" '$1 == k {print $2}' "$2"; }
final() { sed -n "s/.*final stats:.* $1=\([0-9]*\).*/\1/p" "$2" | tail -1; }
for n in "${NS[@]}"; do
  for mode in dump bpf; do
    w=$OUT/$mode-$n
    bash "$HARNESS" --no-floor -a "$ACTIVE" -W "$w" -m http://127.0.0.1:9990/metrics "$n" "$SECS" -- \
      "$BIN" -output='$OUTDIR' -stats-interval=5s -prometheusx.listen-address=127.0.0.1:9990 \
      -poll.mode=$mode -poll.full-interval=$FULL_INTERVAL \
      > "$w.txt" 2>"$w.err"
    log=$w/command.log
    polls=$(final polls "$log")
    grep -h "poll mode bpf" "$log" >&2 || true
    printf 'n=%s active=%s mode=%s cpu_pct=%s (user %s s, sys %s s) steady=%s sys_ms_per_poll=%s interval_ms=%s rss_kb=%s polls=%s queued=%s change_polls=%s full_dumps=%s change_reported=%s other_cpu_pct=%s\n' \
      "$n" "$ACTIVE" "$mode" "$(get cpu_pct "$w.txt")" "$(get cpu_user_s "$w.txt")" "$(get cpu_sys_s "$w.txt")" \
      "$(get steady_cpu_pct "$w.txt")" \
      "$(awk -v s="$(get cpu_sys_s "$w.txt")" -v p="$polls" 'BEGIN { if (p > 0) printf "%.3f", s * 1000 / p }')" \
      "$(get poll_interval_ms "$w.txt")" "$(get main_rss_peak_kb "$w.txt")" "$polls" "$(final queued "$log")" \
      "$(final change_polls "$log")" "$(final full_dumps "$log")" "$(final change_reported "$log")" "$(get other_cpu_pct "$w.txt")"
  done
done
echo "raw results: $OUT" >&2
