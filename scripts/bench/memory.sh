#!/usr/bin/env bash
# The agent's memory per connection: for each N, one run of
# ../shared/bench/bench-collector.sh with ACTIVE of the connections sending
# (16 B every 100 ms), printing the agent's peak RSS (of samples taken once a second) and its steady RSS (the
# median of the samples of the run's second half: the peak includes the
# start-up transient, every connection opening at once), the same two for its
# private memory (RssAnon: RSS without the binary's and the libraries'
# file-backed pages, the harness's "anon" figure); then the slope of
# the steady RSS between consecutive N (bytes per connection: what one more
# connection costs, the process's fixed base cancelled out). Needs root. RSS does not depend much
# on how busy the machine is, but a poller that falls behind queues more:
# check the interval column.
#
#   scripts/bench/memory.sh [SECONDS] [ACTIVE] [N...]   (default: 20 s; 0.10; 2000 10000 19000)
#   BIN=path/to/tcp-info (default: a fresh release build); extra agent flags in AGENT_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}; shift || true
ACTIVE=${1:-0.10}; shift || true
NS=("$@"); ((${#NS[@]})) || NS=(2000 10000 19000)
source scripts/bench/agent.sh
# A fresh work directory per run: the harness takes the command's pid from
# it, and a stale pid file would point it at a process long gone.
OUT=$(mktemp -d /tmp/memory-bench.XXXXXX)
get() { awk -F= -v k="$1" '$1 == k {print $2}' "$2"; }
# The median of a sample file's second half.
steady() {
  local samples
  samples=$(wc -l <"$1")
  tail -n $((samples - samples / 2)) "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
SAMPLER=$PWD/scripts/bench/rss-sampler.sh
prev_n='' prev_rss=''
for n in "${NS[@]}"; do
  w=$OUT/$n
  # shellcheck disable=SC2086
  RSS_SAMPLES=$w.rss bash "$HARNESS" --no-floor -a "$ACTIVE" -W "$w" -m http://127.0.0.1:9990/metrics "$n" "$SECS" -- \
    "$SAMPLER" "$BIN" -output='$OUTDIR' -stats-interval=5s -prometheusx.listen-address=127.0.0.1:9990 ${AGENT_FLAGS:-} \
    > "$w.txt" 2>"$w.err"
  [[ -s $w.rss ]] || { echo "memory.sh: no RSS samples for $n: see $w.err" >&2; continue; }
  peak=$(sort -n "$w.rss" | tail -1)
  rss=$(steady "$w.rss")
  anon=$(steady "$w.rss.anon") anon_peak=$(sort -n "$w.rss.anon" | tail -1)
  slope=''
  if [[ -n $prev_n ]]; then
    slope=$(awk -v a="$prev_rss" -v b="$rss" -v m="$prev_n" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1024 / (n - m) }')
  fi
  printf 'n=%s active=%s peak_rss_kb=%s steady_rss_kb=%s peak_anon_kb=%s steady_anon_kb=%s bytes_per_conn_total=%s slope_bytes_per_conn=%s interval_ms=%s cpu_pct=%s other_cpu_pct=%s\n' \
    "$n" "$ACTIVE" "$peak" "$rss" "$anon_peak" "$anon" "$(awk -v r="$rss" -v n="$n" 'BEGIN { printf "%.0f", r * 1024 / n }')" "${slope:--}" \
    "$(get poll_interval_ms "$w.txt")" "$(get cpu_pct "$w.txt")" "$(get other_cpu_pct "$w.txt")"
  prev_n=$n prev_rss=$rss
done
echo "raw results: $OUT" >&2
