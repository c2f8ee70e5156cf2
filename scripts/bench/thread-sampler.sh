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
#
# With the polls counted in the same window it also prints the CPU per
# poll (ms), the figure the cadence floor is compared on: for the agent set
# POLLS_URL to its metrics (tcpinfo_polls_total; add
# -prometheusx.listen-address=127.0.0.1:9990 to its flags), for
# dump-floor.py set POLLS_FILE (it appends its count there on SIGUSR1; the
# signal is sent only then, and would end a COMMAND that does not handle it).
: >"${THREADS:?set THREADS to the file for the figures}" || exit 1
T1=${T1:-5} T2=${T2:-19}
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM
# Polls so far, or nothing when they are not counted.
polls() {
  if [ -n "${POLLS_URL:-}" ]; then
    curl -fsS --max-time 2 "$POLLS_URL" | awk '$1 == "tcpinfo_polls_total" { print $2 }'
  elif [ -n "${POLLS_FILE:-}" ]; then
    local before
    touch "$POLLS_FILE"
    before=$(wc -l <"$POLLS_FILE")
    kill -USR1 "$pid"
    for _ in $(seq 100); do
      [ "$(wc -l <"$POLLS_FILE")" -gt "$before" ] && break
      sleep 0.01
    done
    tail -n 1 "$POLLS_FILE"
  fi
}
# name utime stime (clock ticks) of every thread, then the time (s) and
# the polls so far.
snapshot() {
  for task in /proc/"$pid"/task/*; do
    # The name is between the first "(" and the last ")"; it may hold spaces.
    awk '{ s = $0; name = substr(s, index(s, "(") + 1); name = substr(name, 1, match(name, /\) [A-Z] /) - 1)
           rest = substr(s, match(s, /\) [A-Z] /) + 2); split(rest, f, " "); gsub(/ /, "_", name)
           print name, f[12], f[13] }' "$task/stat" 2>/dev/null
  done
  echo "@ $(date +%s.%N) $(polls)"
}
sleep "$T1" & wait $!
first=$(snapshot)
sleep $((T2 - T1)) & wait $!
second=$(snapshot)
ticks=$(getconf CLK_TCK)
awk -v ticks="$ticks" '
  $1 == "@" { k = FILENAME == "-" ? 2 : 1; t[k] = $2; p[k] = $3; next }
  FNR == NR { u1[$1] += $2; s1[$1] += $3; next }
  { u2[$1] += $2; s2[$1] += $3 }
  END {
    dt = t[2] - t[1]
    polls = (p[1] != "" && p[2] > p[1]) ? p[2] - p[1] : 0
    # ms of CPU per poll for a share of one core over the window
    per_poll = polls ? dt * 1000 / polls / 100 : 0
    for (n in u2) {
      u = (u2[n] - u1[n]) / ticks / dt * 100; s = (s2[n] - s1[n]) / ticks / dt * 100
      total += u + s
      if (u + s < 0.1) continue
      printf "thread=%s user_pct=%.1f sys_pct=%.1f", n, u, s
      if (polls) printf " user_ms_per_poll=%.3f sys_ms_per_poll=%.3f", u * per_poll, s * per_poll
      printf "\n"
    }
    printf "total_pct=%.1f window_s=%.1f\n", total, dt
    if (polls) printf "polls=%d interval_ms=%.2f cpu_ms_per_poll=%.3f\n", polls, dt * 1000 / polls, total * per_poll
  }' <(printf '%s\n' "$first") - <<<"$second" >"$THREADS"
wait "$pid"
