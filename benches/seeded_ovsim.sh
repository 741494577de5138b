# Sourced by benches/backup.sh and benches/snapshot.sh (from the project folder, after
# benches/ovsim_bench_prereqs.sh), with $work_name, $disk_mib, $big_mib and $big_data_mib set:
# makes the work folder $work under BENCH_TMP (default /var/tmp) on one file system, removes it
# on exit unless KEEP=1 (stopping the measuring process $bench_pid and ovsim first: SIGTERM
# stops ovsim's imageio daemon and qemu-nbd exports), seeds a release `ovsim serve` with
# benches/backup_bench.py's seed (bench01, bench02), waits until it serves, and prints the
# machine line that goes into docs/benchmarks.md.
work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/$work_name.XXXXXX")
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
