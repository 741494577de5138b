#!/usr/bin/env bash
# `ovrun restore` beside the predecessor's four-step merge (copy base, rebase, commit, compress)
# plus the official ovirt_imageio.client.upload, on a production and a DR ovsim in the same run
# (issue 6); results go into docs/benchmarks.md.
#
#   bash benches/restore.sh [ROUNDS]      (default 3 interleaved rounds)
#
# Needs what scripts/setup.sh installs (.venv with ovirt-imageio, qemu-utils) and GNU time
# (/usr/bin/time, Debian package `time`: installed with apt-get here when missing).
# DISK_MIB (default 4096) sets bench01's disk; KEEP=1 keeps the work folder.
#
# It starts a release `ovsim serve` for production seeded with bench01 (DISK_MIB, half data),
# bench03 (2 TiB holding 1 GiB) and bench04 (16 GiB holding 1 GiB), and a second one for DR;
# benches/restore_bench.py takes bench01's full backup and 5 incrementals with `ovrun backup`
# (setup, not timed), then measures, in interleaved rounds, `ovrun restore` of the newest point
# against the four steps + client.upload of the same chain, each result compared with the
# production disk (qemu-img compare); then restores of bench03 and bench04 (same data, virtual
# sizes 128x apart).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
disk_mib=${DISK_MIB:-4096}
source benches/ovsim_bench_prereqs.sh

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/ovrun-restore-bench.XXXXXX")
pids=()
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2> /dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" benches/restore_bench.py seed-prod "$disk_mib" > "$work/prod-seed.json"
"$python" benches/restore_bench.py seed-dr > "$work/dr-seed.json"
for side in prod dr; do
  target/release/ovsim serve --state "$work/$side" --listen 127.0.0.1:0 \
    --seed "$work/$side-seed.json" --imageio .venv/bin/ovirt-imageio > "$work/ovsim-$side.log" 2>&1 &
  pids+=($!)
done
for side in prod dr; do
  until [ -s "$work/$side/url" ]; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2> /dev/null || { cat "$work"/ovsim-*.log >&2; exit 1; }
    done
    sleep 0.2
  done
done
echo "production $(cat "$work/prod/url"), DR $(cat "$work/dr/url")"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "$(qemu-img --version | head -1); ovirt-imageio $("$python" -c 'import importlib.metadata as m; print(m.version("ovirt-imageio"))');" \
  "$(date -u +%Y-%m-%d)"

"$python" benches/restore_bench.py run --prod "$work/prod" --dr "$work/dr" --work "$work" \
  --ovrun "$PWD/target/release/ovrun" --rounds "$rounds" --results "$work/results.json"
