#!/usr/bin/env bash
# Everything BENCHMARKS.md reports, in one run (loopback only; stops by itself):
#   1. sshbio, russh's default crypto backend (ring): every part, presenter follow mode included
#   2. sshbio built with --features aws-lc (every part)
#   3. sshbio with the client offering only curve25519 (what OpenSSH < 9.9 negotiates)
#   4. OpenSSH sshd + ForceCommand `sshbio preview` (bench/sshd-baseline.sh; needs root; it has
#      no follow mode, so the presenter part is skipped there)
#   5. the keynote part (ring) for 500, 1 000, 2 000 and 3 000 visitors (300 with --quick), each
#      on a server with the default admission flags (BENCHMARKS.md, "Keynote")
#
# Needs: a Rust toolchain, the OpenSSH client (`ssh`) and util-linux `script` for the `ssh`
# part; root only for the sshd baseline (skipped otherwise).
#
#   bench/run.sh            full run (about 11 minutes here, plus the builds; 4 of them keynote)
#   bench/run.sh --quick    under a minute per configuration
#   bench/run.sh --quick -- --parts first,keys     extra options for every load generator run
#
# Output: every run's text and JSON under target/bench-results/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
if [ "${1:-}" = "--quick" ]; then
  quick=(--quick)
  shift
fi
if [ "${1:-}" = "--" ]; then shift; fi
extra=("$@")

# One descriptor per connection on each side (client and server); 10 000 idle sessions need
# more than the usual 1 024. The spawned server inherits this limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

out=${OUT:-${CARGO_TARGET_DIR:-target}/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes in src/ or Cargo.toml)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "ssh: $(ssh -V 2>&1)"
  echo "open files: $(ulimit -n)"
} | tee "$out/machine.txt"

run() {
  local name=$1
  shift
  echo
  echo "=== $name"
  "$@" 2>&1 | tee "$out/$name.txt"
}

cargo bench --bench load --no-run
run sshbio-ring cargo bench --bench load -- "${quick[@]}" --label "sshbio (ring)" \
  --json "$out/sshbio-ring.json" "${extra[@]}"

cargo bench --bench load --features aws-lc --no-run
run sshbio-aws-lc cargo bench --bench load --features aws-lc -- "${quick[@]}" --label "sshbio (aws-lc)" \
  --json "$out/sshbio-aws-lc.json" "${extra[@]}"

run sshbio-ring-curve25519 cargo bench --bench load -- "${quick[@]}" --parts first,rate \
  --kex curve25519-sha256 --label "sshbio (ring, client kex curve25519)" \
  --json "$out/sshbio-ring-curve25519.json" "${extra[@]}"

if [ ${#quick[@]} -gt 0 ]; then keynote_sizes=(300); else keynote_sizes=(500 1000 2000 3000); fi
for n in "${keynote_sizes[@]}"; do
  run "keynote-$n" cargo bench --bench load -- --parts keynote --visitors "$n" --label "keynote $n" \
    --json "$out/keynote-$n.json" "${extra[@]}"
done

if [ "$(id -u)" = 0 ]; then
  run sshd bench/sshd-baseline.sh "${quick[@]}" --json "$out/sshd.json" "${extra[@]}"
else
  echo "not root: skipping the OpenSSH sshd baseline"
fi

echo
echo "results in $out"
