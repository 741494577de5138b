#!/usr/bin/env bash
# Benchmarks, each beside its named peer in the same run; results go into docs/benchmarks.md.
#   benches/bench.sh validate [VMS]   ovplan validate vs check-jsonschema on a generated policy
#   benches/bench.sh build [VMS]      ovplan build (every target) vs check-jsonschema validating it
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-7}
venv=target/bench-venv

peer_venv() {
  if [ ! -x "$venv/bin/check-jsonschema" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'check-jsonschema==0.39.0'
  fi
}

policy() {
  local vms=$1 out=target/bench-policy-$1.json
  [ -f "$out" ] || python3 benches/gen_policy.py "$vms" > "$out"
  echo "$out"
}

validate() {
  local vms=${1:-10000} file
  peer_venv
  cargo build --release --quiet --bin ovplan
  file=$(policy "$vms")
  echo "ovplan validate vs check-jsonschema, $vms VMs ($(du -h "$file" | cut -f1) policy), same schema:"
  python3 benches/compare.py "$runs" \
    "ovplan validate=target/release/ovplan validate $file" \
    "check-jsonschema=$venv/bin/check-jsonschema --schemafile schemas/variables.schema.json $file"
}

build() {
  local vms=${1:-10000} file memory disk=target/bench-out
  peer_venv
  cargo build --release --quiet --bin ovplan
  file=$(policy "$vms")
  # The bundle goes to a tmpfs folder (the build's own work), and for information to the
  # project's disk, where creating thirty thousand files costs what the file system makes it.
  memory=$(mktemp -d /dev/shm/ovplan-bench.XXXXXX)
  trap 'rm -rf "$memory"' RETURN
  echo "ovplan build (all targets) vs check-jsonschema validating the same file, $vms VMs:"
  python3 benches/compare.py "$runs" \
    "ovplan build (tmpfs)=target/release/ovplan build $file --out $memory/out" \
    "check-jsonschema=$venv/bin/check-jsonschema --schemafile schemas/variables.schema.json $file" \
    "ovplan build (ext4 disk)=target/release/ovplan build $file --out $disk"
  echo "files written: $(find "$memory/out" -type f | wc -l)"
}

case "${1:-}" in
  validate) shift; validate "$@" ;;
  build) shift; build "$@" ;;
  *) echo "usage: benches/bench.sh validate|build [VMS]" >&2; exit 2 ;;
esac
