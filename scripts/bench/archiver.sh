#!/usr/bin/env bash
# Runs ../shared/bench/bench-collector.sh for tcp-info and for dump-floor.py
# (the kernel's dump cost at the same 10 ms cadence: M-Lab's two per-family
# dumps, and tcp-info's one combined dump), at each N given, and prints one
# summary line per run. Needs root.
#
#   scripts/bench/archiver.sh [SECONDS] [N...]      (default: 20 s; 1000 5000 10000)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}; shift || true
NS=("$@"); ((${#NS[@]})) || NS=(1000 5000 10000)
source scripts/bench/agent.sh
OUT=$(mktemp -d /tmp/archiver-bench.XXXXXX)
get() { awk -F= -v k="$1" '$1 == k {print $2}' "$2"; }
for n in "${NS[@]}"; do
  bash "$HARNESS" -B 10 -W "$OUT/agent-$n" -m http://127.0.0.1:9990/metrics "$n" "$SECS" -- \
    "$BIN" -output='$OUTDIR' -stats-interval=5s -prometheusx.listen-address=127.0.0.1:9990 \
    > "$OUT/agent-$n.txt" 2>"$OUT/agent-$n.err"
  bash "$HARNESS" --no-floor -W "$OUT/floor-$n" "$n" "$SECS" -- python3 scripts/bench/dump-floor.py \
    > "$OUT/floor-$n.txt" 2>"$OUT/floor-$n.err"
  bash "$HARNESS" --no-floor -W "$OUT/floor1-$n" "$n" "$SECS" -- python3 scripts/bench/dump-floor.py --combined \
    > "$OUT/floor1-$n.txt" 2>"$OUT/floor1-$n.err"
  a=$OUT/agent-$n.txt f=$OUT/floor-$n.txt f1=$OUT/floor1-$n.txt
  interval=$(get poll_interval_ms "$a")
  [[ -n "$interval" ]] || interval=$(sed -n 's/.*final stats: polls=[0-9]* mean_interval=\([0-9.]*\)ms.*/\1/p' "$OUT/agent-$n/command.log")
  printf 'n=%s agent_cpu_pct=%s (user %s s, sys %s s) steady=%s interval_ms=%s rss_kb=%s anon_kb=%s files=%s | floor2full_cpu_pct=%s floor2full_ms_per_dump=%s | cadence_floor_cpu_pct=%s (steady %s) combined %s (steady %s) | other_cpu_pct=%s\n' \
    "$n" "$(get cpu_pct "$a")" "$(get cpu_user_s "$a")" "$(get cpu_sys_s "$a")" "$(get steady_cpu_pct "$a")" "$interval" \
    "$(get main_rss_peak_kb "$a")" "$(get tree_anon_peak_kb "$a")" "$(get files "$a")" \
    "$(get floor2full_cpu_pct "$a")" "$(get floor2full_ms_per_dump "$a")" "$(get cpu_pct "$f")" "$(get steady_cpu_pct "$f")" "$(get cpu_pct "$f1")" "$(get steady_cpu_pct "$f1")" "$(get other_cpu_pct "$a")"
done
echo "raw results: $OUT" >&2
