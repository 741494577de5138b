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
work_name=ovrun-snapshot-bench
source benches/seeded_ovsim.sh

"$python" benches/snapshot_bench.py run --state "$work/state" --work "$work" \
  --ovrun "${OVRUN:-$PWD/target/release/ovrun}" --rounds "$rounds" --results "$work/results.json" &
bench_pid=$!
wait "$bench_pid"
