# Sourced by benches/backup.sh and benches/restore.sh (from the project folder): what both need
# besides what scripts/setup.sh installs, checked, then the release binaries built.
python=$PWD/.venv/bin/python
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (Debian package 'time') for /usr/bin/time -v" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y time >&2; else sudo apt-get install -y time >&2; fi
fi
for tool in qemu-img qemu-nbd qemu-io; do
  command -v "$tool" > /dev/null || { echo "$tool missing: run scripts/setup.sh" >&2; exit 2; }
done
"$python" -c 'import ovirt_imageio.client' 2> /dev/null \
  || { echo "ovirt-imageio missing from .venv: run scripts/setup.sh" >&2; exit 2; }
# Two builds: ovrun as shipped (without the simulator), then ovsim with the `sim` feature.
cargo build --release --quiet --bin ovrun
cargo build --release --quiet --features sim --bin ovsim
