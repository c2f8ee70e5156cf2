#!/usr/bin/env bash
# Runs COMMAND and writes to $THREADS the CPU each of its threads used
# between T1 and T2 seconds after its start (default 5 and 19: a 20 s run
# of the harness without its start-up), as a share of one core, user and
# system apart, from /proc/PID/task/*/stat. SIGTERM is passed on to
# COMMAND. For the agent against the cadence floor, thread by thread:
#
#   THREADS=/tmp/agent.txt ../shared/bench/bench-collector.sh --no-floor -a 0.10 -W DIR 5000 20 -- \
#     scripts/bench/thread-sampler.sh target/release/tcp-info -output='$OUTDIR'
#   THREADS=/tmp/floor.txt ../shared/bench/bench-collector.sh --no-floor -a 0.10 -W DIR2 5000 20 -- \
#     scripts/bench/thread-sampler.sh python3 scripts/bench/dump-floor.py --combined
: >"${THREADS:?set THREADS to the file for the figures}" || exit 1
T1=${T1:-5} T2=${T2:-19}
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM
# name utime stime (clock ticks) of every thread, then the time (s).
snapshot() {
  for task in /proc/"$pid"/task/*; do
    # The name is between the first "(" and the last ")"; it may hold spaces.
    awk '{ s = $0; name = substr(s, index(s, "(") + 1); name = substr(name, 1, match(name, /\) [A-Z] /) - 1)
           rest = substr(s, match(s, /\) [A-Z] /) + 2); split(rest, f, " "); gsub(/ /, "_", name)
           print name, f[12], f[13] }' "$task/stat" 2>/dev/null
  done
  echo "@ $(date +%s.%N)"
}
sleep "$T1" & wait $!
first=$(snapshot)
sleep $((T2 - T1)) & wait $!
second=$(snapshot)
ticks=$(getconf CLK_TCK)
awk -v ticks="$ticks" '
  $1 == "@" { t[FILENAME == "-" ? 2 : 1] = $2; next }
  FNR == NR { u1[$1] += $2; s1[$1] += $3; next }
  { u2[$1] += $2; s2[$1] += $3 }
  END {
    dt = t[2] - t[1]
    for (n in u2) {
      u = (u2[n] - u1[n]) / ticks / dt * 100; s = (s2[n] - s1[n]) / ticks / dt * 100
      total += u + s
      if (u + s >= 0.1) printf "thread=%s user_pct=%.1f sys_pct=%.1f\n", n, u, s
    }
    printf "total_pct=%.1f window_s=%.1f\n", total, dt
  }' <(printf '%s\n' "$first") - <<<"$second" >"$THREADS"
wait "$pid"
