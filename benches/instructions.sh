#!/usr/bin/env bash
# Issue 3's overhead in instructions instead of wall time: callgrind counts the instructions of
# the simulation's thread in one bare simulation, the standard run's traffic alone, the lean
# harness and the standard run (the overhead bench's runs, through MQSIM_SIM_ONCE), and this
# prints each against the bare simulation. For one binary the counts hardly depend on the
# machine or on what else it is doing (243.78 M and 243.79 M for one standard run on an AMD and
# an Intel guest), where the wall-time ratio moves with the kind of guest (see
# benches/simulation.md). They move by about 0.1 % from one run to the next: the hash maps of
# turmoil and the standard library draw their keys at random per process, so a ratio's third
# decimal may move by two. Needs valgrind; about ten seconds after the bench's build.
#
#   benches/instructions.sh            # builds the bench in CARGO_TARGET_DIR (or target/)
#   benches/instructions.sh BINARY     # counts an already built bench binary
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "instructions.sh: valgrind is needed and was not found" >&2
    exit 2
fi

if [[ $# -ge 1 ]]; then
    bin="$1"
else
    # cargo names the binary it built on stderr: "Executable benches/simulation.rs (PATH)".
    bin=$(cargo bench -p mqsim-benches --bench simulation --no-run 2>&1 |
        sed -n 's/.*Executable benches\/simulation\.rs (\(.*\))$/\1/p')
fi
if [[ ! -x "$bin" ]]; then
    echo "instructions.sh: no bench binary at '$bin'" >&2
    exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The simulation runs on the process's first thread, which callgrind's --separate-threads
# writes to the file ending in -01; its "summary:" line is that thread's instruction count.
# A run that fails stops the script with its output, rather than with a missing file's error.
count() {
    if ! MQSIM_SIM_ONCE="$1" valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$out/$1" "$bin" >"$out/$1.log" 2>&1; then
        echo "instructions.sh: the $1 run failed under callgrind:" >&2
        cat "$out/$1.log" >&2
        exit 1
    fi
    sed -n 's/^summary: //p' "$out/$1-01"
}

bare=$(count bare)
printf '%-40s %16s %8s\n' "run (5 hosts, 3040 steps)" "instructions" "ratio"
printf '%-40s %16d %8.3f\n' "bare simulation (hosts sleep every tick)" "$bare" 1
for kind in traffic lean standard; do
    n=$(count "$kind")
    case $kind in
    traffic) label="the standard run's traffic alone" ;;
    lean) label="lean harness (one task per host)" ;;
    standard) label="standard run (target <= 1.5)" ;;
    esac
    awk -v l="$label" -v n="$n" -v b="$bare" 'BEGIN { printf "%-40s %16d %8.3f\n", l, n, n / b }'
done
