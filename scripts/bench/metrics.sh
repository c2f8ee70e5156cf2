#!/usr/bin/env bash
# Scrape latency of /metrics and the polling-path CPU of the exposure work,
# next to N live connections: runs scripts/bench/metrics.py as the command
# of ../shared/bench/bench-collector.sh at each N. Needs root.
#
#   scripts/bench/metrics.sh [N...]        (default: 10 10000)
#   SCRAPES=500 SPACING_MS=50 scripts/bench/metrics.sh 10000
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=("$@"); ((${#NS[@]})) || NS=(10 10000)
SCRAPES=${SCRAPES:-500} SPACING_MS=${SPACING_MS:-50} WARMUP_S=${WARMUP_S:-5}
source scripts/bench/agent.sh
OUT=$(mktemp -d /tmp/metrics-bench.XXXXXX)
# Long enough for the warm-up and every scrape; the command exits when done.
SECS=$((WARMUP_S + 10 + SCRAPES * (SPACING_MS + 20) / 1000))
for n in "${NS[@]}"; do
  bash "$HARNESS" --no-floor --rm-output -W "$OUT/run-$n" "$n" "$SECS" -- \
    python3 "$PWD/scripts/bench/metrics.py" "$BIN" '$OUTDIR' "$OUT/metrics-$n.txt" \
    "$SCRAPES" "$SPACING_MS" "$WARMUP_S" > "$OUT/run-$n.txt" 2> "$OUT/run-$n.err"
  echo "n=$n $(tr '\n' ' ' < "$OUT/metrics-$n.txt")| other_cpu_pct=$(awk -F= '$1 == "other_cpu_pct" {print $2}' "$OUT/run-$n.txt")"
done
rm -f "$BIN"
echo "raw results: $OUT" >&2
