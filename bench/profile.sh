#!/usr/bin/env bash
# Where the server's time and memory go (BENCHMARKS.md, "Profile"). Loopback only.
#   CPU:    perf (software cpu-clock event, DWARF call graphs) on the server during the
#           32-parallel full-session run, split into categories by bench/perf-categories.py.
#   Memory: the server under valgrind massif with 200 idle sessions; a detailed snapshot is
#           taken with vgdb after the sessions settled, attributed by bench/massif-attribution.py.
#
#   bench/profile.sh            (needs perf and valgrind: apt-get install linux-perf valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-${CARGO_TARGET_DIR:-target}/bench-results/profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

bin=$(cargo bench --bench load --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "profile: cannot find the load generator binary" >&2; exit 1; }

# Waits (up to 120 s) for a line matching $2 in file $1.
wait_for() {
  for _ in $(seq 1200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "profile: no '$2' in $1" >&2
  return 1
}

echo "== CPU: perf during 32 parallel full sessions"
"$bin" --parts rate --parallel 32 --rate-secs 8 --rate-max 100000 >"$out/rate.txt" 2>&1 &
load=$!
wait_for "$out/rate.txt" 'pid [0-9]'
pid=$(grep -o 'pid [0-9]*' "$out/rate.txt" | head -1 | cut -d' ' -f2)
sleep 1.5
perf record -q -F 499 -e cpu-clock --call-graph dwarf,32768 -p "$pid" -o "$out/perf.data" -- sleep 4 2>/dev/null
wait "$load"
grep 'parallel:' "$out/rate.txt"
perf script -i "$out/perf.data" -F comm,tid,ip,sym 2>/dev/null | python3 bench/perf-categories.py | tee "$out/cpu-categories.txt"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none >"$out/cpu-symbols.txt" 2>/dev/null || true

echo
echo "== Memory: massif, 200 idle sessions"
"$bin" --parts idle --idle 200 --idle-window 15 --idle-long 0 --idle-churn 0 --idle-concurrency 4 \
  --server-args "--handshake-timeout 60" \
  --server-wrapper "valgrind --tool=massif --vgdb=yes --massif-out-file=$out/massif.out --threshold=0.2" \
  >"$out/idle.txt" 2>&1 &
load=$!
wait_for "$out/idle.txt" 'opened'
pid=$(grep -o 'idle part: pid [0-9]*' "$out/idle.txt" | grep -o '[0-9]*$')
sleep 9 # past the settle time, inside the quiet window
vgdb --pid="$pid" detailed_snapshot "$out/snapshot.txt" >/dev/null
wait "$load"
grep -E 'opened|per idle' "$out/idle.txt"
python3 bench/massif-attribution.py "$out/snapshot.txt" 200 | tee "$out/heap-attribution.txt"
echo
echo "profile results in $out"
