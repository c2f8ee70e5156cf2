#!/usr/bin/env bash
# The agent against the kernel's own cost of its dump: for each N, one run of
# ../shared/bench/bench-collector.sh for the cadence floor (dump-floor.py
# --combined: tcp-info's one dump every 10 ms, replies read, not parsed),
# then one per agent mode (-poll.mode=dump and bpf), with ACTIVE of the
# connections sending (16 B every 100 ms). Prints, per mode: CPU (user/sys),
# CPU and kernel time per poll, both as ratios to the floor's, the achieved
# interval against the issue's bound max(10 ms, 1.1 x the floor's dump
# time), peak RSS, the snapshots queued for the archive, and in bpf mode how
# many polls read only the changed sockets, how many were complete dumps and
# how many sockets the iterator reported. Needs root. Measures CPU: run it on
# a quiet machine.
#
#   scripts/bench/bpf-mode.sh [SECONDS] [ACTIVE] [N...]   (default: 20 s; 0.10; 1000 5000 10000)
#   MODES="dump bpf" (default) picks the agent modes; FULL_INTERVAL=1s (default)
#   sets -poll.full-interval for the bpf runs; FLOOR=0 skips the floor;
#   ROUNDS=R (default 1) runs the floor and the modes R times over, one after
#   the other, and ends with each N's and mode's median ratios: this VM's
#   run-to-run noise (±0.1-0.15 of a ratio) is as large as the differences
#   asked about (with FLOOR=0 there is no ratio, so no medians). (Not REPS:
#   the agent reads REPS from the environment as its -reps flag.)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}; shift || true
ACTIVE=${1:-0.10}; shift || true
NS=("$@"); ((${#NS[@]})) || NS=(1000 5000 10000)
FULL_INTERVAL=${FULL_INTERVAL:-1s}
read -r -a MODE_LIST <<<"${MODES:-dump bpf}"
source scripts/bench/agent.sh
OUT=$(mktemp -d /tmp/bpf-mode-bench.XXXXXX)
get() { awk -F= -v k="$1" '$1 == k {print $2}' "$2"; }
final() { sed -n "s/.*final stats:.* $1=\([0-9]*\).*/\1/p" "$2" | tail -1; }
per_poll() { awk -v s="$1" -v p="$2" 'BEGIN { if (p > 0) printf "%.3f", s * 1000 / p }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "-" }'; }
RATIOS=$OUT/ratios
for ((rep = 1; rep <= ${ROUNDS:-1}; rep++)); do
for n in "${NS[@]}"; do
  floor_cpu='' floor_sys='' floor_dump=''
  if [[ ${FLOOR:-1} != 0 ]]; then
    w=$OUT/floor-$n-$rep
    bash "$HARNESS" --no-floor -a "$ACTIVE" -W "$w" "$n" "$SECS" -- python3 scripts/bench/dump-floor.py --combined \
      > "$w.txt" 2>"$w.err"
    line=$(grep -h "dump-floor: polls=" "$w/command.log" | tail -1 || true)
    [[ -n $line ]] || echo "bpf-mode.sh: the floor run at $n printed no figures: see $w.err" >&2
    polls=$(sed -n 's/.*polls=\([0-9]*\).*/\1/p' <<<"$line")
    floor_dump=$(sed -n 's/.*mean_dump=\([0-9.]*\)ms.*/\1/p' <<<"$line")
    floor_cpu=$(per_poll "$(get cpu_total_s "$w.txt")" "$polls")
    floor_sys=$(per_poll "$(get cpu_sys_s "$w.txt")" "$polls")
    printf 'n=%s active=%s floor cpu_ms_per_poll=%s sys_ms_per_poll=%s dump_ms=%s interval_bound_ms=%s polls=%s other_cpu_pct=%s\n' \
      "$n" "$ACTIVE" "$floor_cpu" "$floor_sys" "$floor_dump" \
      "$(awk -v d="$floor_dump" 'BEGIN { b = 1.1 * d; if (b < 10) b = 10; printf "%.2f", b }')" "$polls" "$(get other_cpu_pct "$w.txt")"
  fi
  for mode in "${MODE_LIST[@]}"; do
    w=$OUT/$mode-$n-$rep
    bash "$HARNESS" --no-floor -a "$ACTIVE" -W "$w" -m http://127.0.0.1:9990/metrics "$n" "$SECS" -- \
      "$BIN" -output='$OUTDIR' -stats-interval=5s -prometheusx.listen-address=127.0.0.1:9990 \
      -poll.mode=$mode -poll.full-interval=$FULL_INTERVAL \
      > "$w.txt" 2>"$w.err"
    log=$w/command.log
    polls=$(final polls "$log")
    grep -h "poll mode bpf" "$log" >&2 || true
    cpu=$(per_poll "$(get cpu_total_s "$w.txt")" "$polls")
    sys=$(per_poll "$(get cpu_sys_s "$w.txt")" "$polls")
    printf 'n=%s active=%s mode=%s cpu_pct=%s (user %s s, sys %s s) cpu_ms_per_poll=%s (x%s floor) sys_ms_per_poll=%s (x%s floor) interval_ms=%s rss_kb=%s polls=%s queued=%s change_polls=%s full_dumps=%s change_reported=%s other_cpu_pct=%s\n' \
      "$n" "$ACTIVE" "$mode" "$(get cpu_pct "$w.txt")" "$(get cpu_user_s "$w.txt")" "$(get cpu_sys_s "$w.txt")" \
      "$cpu" "$(ratio "$cpu" "$floor_cpu")" "$sys" "$(ratio "$sys" "$floor_sys")" \
      "$(get poll_interval_ms "$w.txt")" "$(get main_rss_peak_kb "$w.txt")" "$polls" "$(final queued "$log")" \
      "$(final change_polls "$log")" "$(final full_dumps "$log")" "$(final change_reported "$log")" "$(get other_cpu_pct "$w.txt")"
    echo "$n $mode $(ratio "$cpu" "$floor_cpu") $(ratio "$sys" "$floor_sys") $(get poll_interval_ms "$w.txt")" >>"$RATIOS"
  done
done
done
if ((${ROUNDS:-1} > 1)) && [[ ${FLOOR:-1} != 0 ]]; then
  for n in "${NS[@]}"; do
    for mode in "${MODE_LIST[@]}"; do
      # A run that printed no figures has "-" for its ratios: left out.
      median() { awk -v n="$n" -v m="$mode" -v c="$1" '$1 == n && $2 == m && $c ~ /^[0-9.]+$/ { print $c }' "$RATIOS" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
      all=$(awk -v n="$n" -v m="$mode" '$1 == n && $2 == m { printf "%s%s", sep, $3; sep = "," }' "$RATIOS")
      printf 'median n=%s mode=%s rounds=%s cpu_per_poll=x%s floor (runs: %s) sys_per_poll=x%s floor interval_ms=%s\n' \
        "$n" "$mode" "${ROUNDS}" "$(median 3)" "$all" "$(median 4)" "$(median 5)"
    done
  done
fi
echo "raw results: $OUT" >&2
