#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (cargo-afl, stable toolchain).
#
#   scripts/fuzz.sh TARGET MINUTES   build, fuzz TARGET for MINUTES, harvest
#   scripts/fuzz.sh harvest TARGET   copy a run's findings into testdata/fuzz/TARGET/
#   scripts/fuzz.sh build            build the AFL binaries only
#   scripts/fuzz.sh list             the targets
#
# Targets: the bodies in fuzz/src (crate tcp-info-fuzz), one AFL binary each
# in fuzz/afl. The seed corpus is testdata/fuzz/TARGET/, which `cargo test`
# replays (fuzz/tests/replay.rs).
#
# Harvesting minimises the corpus plus the run's queue with afl-cmin and adds
# the new entries as `q-<sha1>`, the crashes as `crash-<sha1>` and the hangs
# as `hang-<sha1>` (seeds and reproducers already there are kept). A crash or
# hang makes `cargo test` fail until it is fixed: fix it, keep the file, and
# add a named regression test.
#
# Environment:
#   FUZZ_RUNS        where runs live (default target/fuzz-runs); a run's AFL
#                    output is $FUZZ_RUNS/TARGET, resumed when it exists
#   FUZZ_TARGET_DIR  cargo target dir of the AFL build (default target/afl:
#                    AFL's instrumented build must not share the normal one)
#   FUZZ_HARVEST=0   fuzz without harvesting (for detached runs)
#   FUZZ_CMIN=0      harvest without the minimiser: keep the queue entries AFL
#                    marked as new coverage (+cov)
#   FUZZ_TIMEOUT_MS  per-input timeout (default 1000)
#
# Works as root on a fresh Debian machine: installs a C toolchain and
# cargo-afl when missing, builds AFL++ from cargo-afl's bundled source, and
# tells AFL not to insist on the CPU governor or on core_pattern (which a
# container may not be allowed to change).
set -euo pipefail

TARGETS=(archive netlink_dump destroy_notice policy event_socket go_flags)

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${FUZZ_RUNS:-$repo/target/fuzz-runs}
target_dir=${FUZZ_TARGET_DIR:-$repo/target/afl}

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "targets: ${TARGETS[*]}" >&2
    exit 2
}

is_target() {
    local t
    for t in "${TARGETS[@]}"; do [[ $t == "$1" ]] && return 0; done
    return 1
}

ensure_afl() {
    if ! command -v make >/dev/null || ! command -v cc >/dev/null; then
        [[ $(id -u) == 0 ]] || { echo "fuzz.sh: needs make and a C compiler" >&2; exit 1; }
        apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
    fi
    command -v cargo-afl >/dev/null || cargo install cargo-afl --locked
    # Builds AFL++ (afl-fuzz, afl-cmin, the runtime) once per rustc version.
    # (Found by path; should that guess fail, `config --build` only says
    # it is built already.)
    if [[ ! -x $(afl_bin afl-fuzz) ]]; then
        cargo afl config --build || true
    fi
}

# The AFL++ tool `$1` cargo-afl built for this rustc.
afl_bin() {
    local rustc
    rustc=$(rustc -V | awk '{ print $2 "-" substr($3, 2, 7) }')
    ls -d "$HOME"/.local/share/afl.rs/rustc-"$rustc"/afl.rs-*/afl/bin/"$1" 2>/dev/null | tail -1
}

build() {
    (cd "$repo/fuzz/afl" && CARGO_TARGET_DIR=$target_dir cargo afl build --release "$@")
}

afl_env() {
    export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_AUTORESUME=1
    # A campaign started in a session of its own (setsid) gets a scheduler
    # autogroup of its own, against which `nice` does nothing: the
    # campaign would take its share of the cores from builds and
    # benchmarks in other sessions. The autogroup takes its niceness.
    # Only a session of its own: the autogroup is the whole session's.
    local niceness
    niceness=$(nice)
    if ((niceness > 0)) && [[ $(ps -o sid= -p $$ | tr -d ' ') == "$$" ]]; then
        { echo "$niceness" >/proc/self/autogroup; } 2>/dev/null || true
    fi
    # Other fuzzers or builds may hold the cores: do not bind to one.
    export AFL_NO_AFFINITY=1
    # A core_pattern that pipes to a program slows crash detection; AFL
    # refuses to start unless told that is fine (or root changes it).
    if [[ $(cat /proc/sys/kernel/core_pattern 2>/dev/null) == \|* ]]; then
        export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
    fi
}

fuzz() {
    local target=$1 minutes=$2
    local out=$runs/$target
    mkdir -p "$out"
    afl_env
    echo "fuzz.sh: $target for $minutes min, output in $out" >&2
    # -V ends the campaign after that many seconds (resumed on a later run).
    cargo afl fuzz -V $((minutes * 60)) -t "${FUZZ_TIMEOUT_MS:-1000}" \
        -i "$repo/testdata/fuzz/$target" -o "$out" \
        -- "$target_dir/release/$target"
}

# The AFL files of `$1` (a queue, crashes or hangs directory), not its state.
entries() {
    [[ -d $1 ]] || return 0
    find "$1" -maxdepth 1 -type f -name 'id:*'
}

harvest() {
    local target=$1
    local out=$runs/$target/default corpus=$repo/testdata/fuzz/$target
    [[ -d $out ]] || { echo "fuzz.sh: no run of $target in $runs" >&2; exit 1; }
    local work
    work=$(mktemp -d)
    mkdir -p "$work/all" "$work/min"
    # The corpus so far and the run's queue, named after their content.
    # FUZZ_CMIN=0 skips the minimiser, whose bash version takes one `sort`
    # per coverage tuple (a quarter of an hour for a 5,000-entry queue):
    # the corpus keeps its entries and gains the queue entries AFL marked
    # as new coverage (`+cov`).
    local f sum queue
    if [[ ${FUZZ_CMIN:-1} == 0 ]]; then
        queue=$(entries "$out/queue" | grep -F '+cov' || true)
    else
        queue=$(entries "$out/queue")
    fi
    for f in "$corpus"/* $queue; do
        [[ -f $f && $f != *.md ]] || continue
        sum=$(sha1sum "$f" | cut -c1-12)
        cp "$f" "$work/all/q-$sum"
    done
    # afl-cmin.bash: the Python afl-cmin of AFL++ 4.3x finds no coverage in
    # cargo-afl's persistent-mode binaries (0 tuples, 0 files kept).
    local cmin
    cmin=$(afl_bin afl-cmin.bash)
    afl_env
    if [[ ${FUZZ_CMIN:-1} == 0 ]]; then
        rm -rf "$work/min"
        cp -r "$work/all" "$work/min"
    elif [[ ! -x $cmin ]] || ! AFL_PATH=$(dirname "$cmin") "$cmin" -i "$work/all" -o "$work/min" \
        -t 5000 -- "$target_dir/release/$target" >"$work/cmin.log" 2>&1; then
        echo "fuzz.sh: afl-cmin failed: keeping every entry" >&2
        tail -c 300 "$work/cmin.log" >&2 || true
        rm -rf "$work/min"
        cp -r "$work/all" "$work/min"
    fi
    # Entries harvested before and no longer needed go; seeds and
    # reproducers (any other name) stay.
    local added=0 removed=0
    for f in "$corpus"/q-*; do
        [[ -f $f ]] || continue
        [[ -f $work/min/$(basename "$f") ]] || { rm "$f"; removed=$((removed + 1)); }
    done
    local seeds
    seeds=$(for f in "$corpus"/*; do [[ -f $f ]] && sha1sum "$f" | cut -c1-12; done)
    for f in "$work/min"/q-*; do
        [[ -f $f ]] || continue
        sum=${f##*/q-}
        grep -qx "$sum" <<<"$seeds" && continue
        cp "$f" "$corpus/"
        added=$((added + 1))
    done
    local kind found=0
    for kind in crash hang; do
        local dir=crashes
        [[ $kind == hang ]] && dir=hangs
        for f in $(entries "$out/$dir"); do
            sum=$(sha1sum "$f" | cut -c1-12)
            [[ -f $corpus/$kind-$sum ]] && continue
            cp "$f" "$corpus/$kind-$sum"
            echo "fuzz.sh: $target: new $kind: testdata/fuzz/$target/$kind-$sum" >&2
            found=$((found + 1))
        done
    done
    rm -rf "$work"
    echo "fuzz.sh: $target: corpus +$added -$removed entries; $found new crashes/hangs" >&2
}

main() {
    [[ $# -ge 1 ]] || usage
    case $1 in
    list) printf '%s\n' "${TARGETS[@]}" ;;
    build)
        ensure_afl
        build
        ;;
    harvest)
        [[ $# -eq 2 ]] && is_target "$2" || usage
        harvest "$2"
        ;;
    *)
        [[ $# -eq 2 ]] && is_target "$1" && [[ $2 =~ ^[1-9][0-9]*$ ]] || usage
        ensure_afl
        build --bin "$1"
        fuzz "$1" "$2"
        if [[ ${FUZZ_HARVEST:-1} != 0 ]]; then
            harvest "$1"
        fi
        ;;
    esac
}

# One line, so that bash has read all of it before it runs (a detached run
# keeps going while the file is edited).
main "$@"; exit $?
