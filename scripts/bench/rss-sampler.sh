#!/usr/bin/env bash
# Runs COMMAND and writes its resident set (VmRSS, kB) once a second to
# $RSS_SAMPLES, one line per sample: the peak a run reaches (the harness
# reports it) includes the start-up transient — every connection opening,
# and a file created for each, in the first second — while the samples show
# the steady state. SIGTERM is passed on to COMMAND.
#
#   RSS_SAMPLES=/tmp/rss.txt rss-sampler.sh COMMAND [ARGS...]
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM
: >"${RSS_SAMPLES:?}"
while kill -0 "$pid" 2>/dev/null; do
  awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" >>"$RSS_SAMPLES" 2>/dev/null
  sleep 1 & wait $!
done
wait "$pid"
