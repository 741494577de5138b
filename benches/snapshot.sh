#!/usr/bin/env bash
# `ovrun backup` by the snapshot method beside the backup API, on the same disks of the same ovsim
# in the same run (issue 13); results go into docs/benchmarks.md.
#
#   bash benches/snapshot.sh [ROUNDS]      (default 3 interleaved rounds of each measurement)
#
# Needs what scripts/setup.sh installs (.venv with ovirt-imageio, qemu-utils) and GNU time
# (/usr/bin/time, Debian package `time`: installed with apt-get here when missing).
# Disk sizes can be shrunk for a smoke run: DISK_MIB=512 BIG_MIB=1024 bash benches/snapshot.sh 1
# BIG_DATA_MIB (default 64) sets bench02's data. KEEP=1 keeps the work folder (logs, the runner
# configs, results.json) after the run. OVRUN=PATH measures another ovrun build.
#
# It starts a release `ovsim serve` (real snapshot volumes: qcow2 layers under its state folder)
# seeded by benches/backup_bench.py's `seed`: bench01 (a DISK_MIB disk, half data in 16
# separated ranges, half zero) and bench02 (a BIG_MIB disk with BIG_DATA_MIB of data); then
# benches/snapshot_bench.py measures, with two runner configs per VM that differ only in
# backup.backup_method (backup_api, snapshot) and write to separate backup directories:
#   1. full backups of bench01 by each method (`ovrun backup --full`, whole process under
#      /usr/bin/time -v; its data time from the JSON log), interleaved; the full images compared;
#   2. after 64 MiB of guest writes (64 x 1 MiB spread over the disk), a snapshot-method
#      incremental (bytes read at most the written 64 KiB clusters) and a backup-API incremental
#      of the same writes, on bench01 and on bench02 (4x the disk: time follows the written
#      data); each chain compared with the ovsim disk.
# Seeding (qemu-io writing the data) and the snapshot-method bases are setup, not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
disk_mib=${DISK_MIB:-4096}
big_mib=${BIG_MIB:-16384}
big_data_mib=${BIG_DATA_MIB:-64}
source benches/ovsim_bench_prereqs.sh

# The work folder (simulated disks, both methods' backups) on one file system.
work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/ovrun-snapshot-bench.XXXXXX")
sim_pid=""
bench_pid=""
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2> /dev/null; then
    kill -TERM "$bench_pid" 2> /dev/null || true
    wait "$bench_pid" 2> /dev/null || true
  fi
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2> /dev/null; then
    # SIGTERM: ovsim stops its imageio daemon and its qemu-nbd exports.
    kill -TERM "$sim_pid" 2> /dev/null || true
    for _ in $(seq 100); do kill -0 "$sim_pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$sim_pid" 2> /dev/null || true
    wait "$sim_pid" 2> /dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "work folder kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" benches/backup_bench.py seed "$disk_mib" "$big_mib" "$big_data_mib" > "$work/seed.json"
echo "seeding ovsim (bench01: $disk_mib MiB, half data; bench02: $big_mib MiB, $big_data_mib MiB data) in $work ..."
seeding=$(date +%s)
target/release/ovsim serve --state "$work/state" --listen 127.0.0.1:0 --seed "$work/seed.json" \
  --imageio .venv/bin/ovirt-imageio > "$work/ovsim.log" 2>&1 &
sim_pid=$!
until [ -s "$work/state/url" ]; do
  kill -0 "$sim_pid" 2> /dev/null || { cat "$work/ovsim.log" >&2; exit 1; }
  sleep 0.2
done
echo "ovsim serves $(cat "$work/state/url") (seeded in $(($(date +%s) - seeding)) s)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "$(qemu-img --version | head -1); ovirt-imageio $("$python" -c 'import importlib.metadata as m; print(m.version("ovirt-imageio"))');" \
  "ovrun at $(git rev-parse --short HEAD 2> /dev/null || echo '(no git)')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2> /dev/null || echo ' with uncommitted changes');" \
  "$(date -u +%Y-%m-%d)"

"$python" benches/snapshot_bench.py run --state "$work/state" --work "$work" \
  --ovrun "${OVRUN:-$PWD/target/release/ovrun}" --rounds "$rounds" --results "$work/results.json" &
bench_pid=$!
wait "$bench_pid"
