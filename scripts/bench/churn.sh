#!/usr/bin/env bash
# The archiver's churn benchmark: ../shared/bench/bench-collector.sh with N
# long-lived connections, plus RATE short connections a second from the
# client namespace to the server namespace (scripts/bench/churn.py) for the
# whole run. The churn's processes run outside the agent's cgroup: the
# harness charges only the agent. Needs root.
#
#   scripts/bench/churn.sh N RATE [SECONDS] [AGENT FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=$1 RATE=$2 SECS=${3:-20}; shift 3 || shift $#
source scripts/bench/agent.sh
OUT=$(mktemp -d /tmp/churn-bench.XXXXXX)
before=$(ip netns list | awk '{print $1}' | sort)
bash "$HARNESS" --no-floor -W "$OUT/agent" -m http://127.0.0.1:9990/metrics "$N" "$SECS" -- \
  "$BIN" -output='$OUTDIR' -stats-interval=5s -prometheusx.listen-address=127.0.0.1:9990 "$@" \
  > "$OUT/agent.txt" 2>"$OUT/agent.err" &
harness=$!
# The harness's namespaces (bcA<pid>, bcB<pid>) appear once it set them up;
# start the churn when the agent runs (its command log exists).
ns_a= ns_b=
for _ in $(seq 600); do
  new=$(comm -13 <(echo "$before") <(ip netns list | awk '{print $1}' | sort))
  ns_a=$(grep '^bcA' <<<"$new" || true); ns_b=$(grep '^bcB' <<<"$new" || true)
  [[ -n "$ns_a" && -n "$ns_b" && -s "$OUT/agent/command.log" ]] && break
  sleep 0.5
done
[[ -n "$ns_a" && -n "$ns_b" ]] || { echo "churn.sh: no harness namespaces" >&2; exit 1; }
ip netns exec "$ns_a" python3 scripts/bench/churn.py server 198.51.100.1 9100 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
ip netns exec "$ns_b" python3 scripts/bench/churn.py client 198.51.100.1 9100 "$RATE" "$((SECS - 2))" > "$OUT/churn.txt"
wait $harness
m=$(awk -F= '$1 == "metrics_file" {print $2}' "$OUT/agent.txt")
get() { awk -F= -v k="$1" '$1 == k {print $2}' "$OUT/agent.txt"; }
metric() { [[ -f "$m" ]] && awk -v k="$1" '$1 == k {print $2}' "$m" || echo "?"; }
short=$(awk '/^tcpinfo_short_connections_total/ {s += $2} END {print s + 0}' "$m" 2>/dev/null || echo "?")
printf 'n=%s rate=%s %s agent_cpu_pct=%s steady=%s interval_ms=%s rss_kb=%s notices=%s notices_lost=%s short_connections=%s absent_closes=%s other_cpu_pct=%s\n' \
  "$N" "$RATE" "$(cat "$OUT/churn.txt")" "$(get cpu_pct)" "$(get steady_cpu_pct)" "$(get poll_interval_ms)" \
  "$(get main_rss_peak_kb)" "$(metric tcpinfo_destroy_notices_total)" "$(metric tcpinfo_destroy_notices_lost_total)" \
  "$short" "$(metric tcpinfo_absent_closes_total)" "$(get other_cpu_pct)"
echo "raw results: $OUT" >&2
