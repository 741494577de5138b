#!/usr/bin/env bash
# `ovrun backup` beside the official ovirt_imageio.client.download, on the same kind of ticket of
# the same ovsim in the same run (issue 5); results go into docs/benchmarks.md.
#
#   bash benches/backup.sh [ROUNDS]      (default 3 interleaved rounds of each measurement)
#
# Needs what scripts/setup.sh installs (.venv with ovirt-imageio, qemu-utils) and GNU time
# (/usr/bin/time, Debian package `time`: installed with apt-get here when missing).
# Disk sizes can be shrunk for a smoke run: DISK_MIB=1024 BIG_MIB=2048 bash benches/backup.sh 1
# BIG_DATA_MIB (default 64) sets bench02's data, e.g. 8192 for ovrun's peak RSS on a big full.
# Set KEEP=1 to keep the work folder (logs, results.json) after the run.
# OVRUN=PATH measures another ovrun build (an older commit's) against this ovsim: two builds
# compared on one simulator, so only ovrun differs.
#
# It starts a release `ovsim serve` seeded with bench01 (a DISK_MIB disk, half data in 16
# separated ranges, half zero) and bench02 (a BIG_MIB disk with BIG_DATA_MIB of data), then
# benches/backup_bench.py measures:
#   1. full backups: `ovrun backup --full` (whole process, under /usr/bin/time -v) against the
#      official client's download of a full backup's transfer (only the download call timed);
#   2. incrementals after 64 MiB of guest writes (64 x 1 MiB spread over the disk), ovrun
#      against the official client downloading the same changes (from the same checkpoint)
#      into an overlay on ovrun's previous image; then ovrun alone after 256 MiB of writes;
#   3. the same 64 MiB incremental on the BIG_MIB disk (bench02): time follows the changed data,
#      not the disk size; and every ovrun run's peak RSS.
# Seeding (qemu-io writing the data) is setup and is not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
disk_mib=${DISK_MIB:-4096}
big_mib=${BIG_MIB:-16384}
big_data_mib=${BIG_DATA_MIB:-64}
source benches/ovsim_bench_prereqs.sh

# The work folder (simulated disks, backups, the client's downloads) on one file system.
work_name=ovrun-bench
source benches/seeded_ovsim.sh

"$python" benches/backup_bench.py run --state "$work/state" --work "$work" \
  --ovrun "${OVRUN:-$PWD/target/release/ovrun}" --rounds "$rounds" --results "$work/results.json" &
bench_pid=$!
wait "$bench_pid"
