#!/usr/bin/env bash
# Installs what the project and its tests need on a Debian machine, from Debian's packages and
# PyPI only. Safe to run again: it installs only what is missing.
#   Debian: python3 + venv, gcc (builds ovirt-imageio's C helper), libxml2-dev (builds the oVirt
#           SDK's XML parser), qemu-utils (qemu-img, qemu-nbd, qemu-io: ovsim's disks), systemd
#           (systemd-analyze checks the compiled units), prometheus (promtool checks the compiled
#           alert rules), podman with runc and catatonit, debootstrap (the compose bundle is
#           built and run on a Debian base image made from Debian's packages), redis-server
#           and postgresql (the broker and database of the Airflow target's CeleryExecutor run), chromium
#           (renders the status page in the tests)
#   PyPI, into .venv: ovirt-imageio (ovsim's real data plane and the official clients),
#           ovirt-engine-sdk-python (what `ovirt-img` drives the engine with), croniter (an
#           independent cron implementation the tests compare against), and the SDK's examples
#           from its source package (the tests run them unchanged against ovsim), podman-compose
#           (Debian 12's 1.0.3 cannot put a service in the host's network nor build with
#           `additional_contexts`)
#   PyPI, into .venv-airflow: Airflow 3 with the Celery provider, and ruff
#           (scripts/requirements-airflow.txt): the tests parse and run the compiled DAGs
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain of version 1.88 or newer (rustup) first" >&2
  exit 2
fi

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# git: `ovplan diff --git` and the CI wiring's tests run it in temporary repositories.
command -v git >/dev/null 2>&1 || missing+=(git)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v gcc >/dev/null 2>&1 || missing+=(gcc python3-dev)
[ -e /usr/include/libxml2/libxml/parser.h ] || missing+=(libxml2-dev)
for tool in qemu-img qemu-nbd qemu-io; do
  command -v "$tool" >/dev/null 2>&1 || { missing+=(qemu-utils); break; }
done
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
# pgrep and pkill: tests check that no qemu-nbd outlives its owner.
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
# man: the tests render the binaries' manual pages with `man -l`.
command -v man >/dev/null 2>&1 || missing+=(man-db)
# promtool (Debian's prometheus package): the tests check and unit-test the compiled alert rules.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The compose bundle's test: podman builds the Dockerfile and runs the scheduler container with
# runc (crun refuses a hybrid cgroup tree that holds a controller, as CI's machines have) and
# catatonit (compose's `init: true`), on a base image debootstrap makes; strip (binutils)
# slims the ovrun the image is given.
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v catatonit >/dev/null 2>&1 || missing+=(catatonit)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
# The Airflow target's CeleryExecutor run: redis-server is the broker, a throwaway PostgreSQL
# cluster the metadata database (on SQLite a trigger failed with a database error);
# each Celery worker plays a backup host in namespaces of its own (unshare, mount: util-linux;
# hostname).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v hostname >/dev/null 2>&1 || missing+=(hostname)
# chromium (headless): the tests lay out and screenshot the status page (`ovrun status --format
# html`) as a browser does.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# pre-commit (scripts/requirements-test.txt): the tests run the project's hooks with it.
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/ovirt-imageio ] \
  || ! .venv/bin/python -c 'import croniter, ovirtsdk4' >/dev/null 2>&1 \
  || [ ! -x .venv/bin/pre-commit ] || [ ! -x .venv/bin/podman-compose ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-sim.txt -r scripts/requirements-test.txt
fi

# The official Python SDK's examples (the examples/ folder of its source package, the same
# version as the SDK installed above), which the tests run unchanged against ovsim.
sdk_examples=.venv/share/ovirt-engine-sdk-examples
if [ ! -f "$sdk_examples/page_vms.py" ]; then
  sdk=$(grep '^ovirt-engine-sdk-python==' scripts/requirements-sim.txt)
  download=$(mktemp -d)
  .venv/bin/pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$download" "$sdk"
  tar -xzf "$download"/ovirt_engine_sdk_python-*.tar.gz -C "$download"
  mkdir -p "$sdk_examples"
  cp -r "$download"/ovirt_engine_sdk_python-*/examples/. "$sdk_examples"/
  rm -rf "$download"
fi

# Airflow 3 in a venv of its own (its pins would fight the simulator's). Every package is pinned
# in scripts/requirements-airflow.txt, frozen from a working install: Airflow's constraint files
# are not on the package registry. Reinstalled only when the pinned Airflow or Celery or the
# PostgreSQL drivers are not there (Celery 5.7 broke the Celery provider's executor: an earlier
# venv may hold it).
airflow_pin=$(grep '^apache-airflow==' scripts/requirements-airflow.txt | cut -d= -f3)
celery_pin=$(grep '^celery==' scripts/requirements-airflow.txt | cut -d= -f3)
if [ "$(.venv-airflow/bin/python -c 'import airflow, celery, psycopg2, asyncpg; print(airflow.__version__, celery.__version__)' 2>/dev/null)" \
  != "$airflow_pin $celery_pin" ] || [ ! -x .venv-airflow/bin/ruff ]; then
  python3 -m venv .venv-airflow
  .venv-airflow/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-airflow.txt
fi
