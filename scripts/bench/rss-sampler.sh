#!/usr/bin/env bash
# Runs COMMAND and writes its resident set (VmRSS, kB) once a second to
# $RSS_SAMPLES, one line per sample, and its private memory (RssAnon, kB:
# what the harness's tree_anon_* figures count, without the binary's and
# the libraries' file-backed pages) to $RSS_SAMPLES.anon: the peak a run
# reaches (the harness reports it) includes the start-up transient — every
# connection opening, and a file created for each, in the first second —
# while the samples show the steady state. SIGTERM is passed on to COMMAND.
# (The harness's own main_rss_* figures are then this wrapper's: read the
# samples.)
#
#   RSS_SAMPLES=/tmp/rss.txt rss-sampler.sh COMMAND [ARGS...]
: >"${RSS_SAMPLES:?set RSS_SAMPLES to the file for the samples}" || exit 1
: >"$RSS_SAMPLES.anon" || exit 1
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM
while kill -0 "$pid" 2>/dev/null; do
  awk -v rss="$RSS_SAMPLES" -v anon="$RSS_SAMPLES.anon" '
    /^VmRSS:/ { print $2 >>rss }
    /^RssAnon:/ { print $2 >>anon }' "/proc/$pid/status" 2>/dev/null
  sleep 1 & wait $!
done
wait "$pid"
