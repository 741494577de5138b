"""`ovrun backup` beside the official `ovirt_imageio.client.download`, on a running ovsim.

benches/backup.sh starts ovsim with the seed this script writes (`seed`) and then runs the
measurements (`run`); the official client is timed in its own process (`download`).

    backup_bench.py seed DISK_MIB BIG_MIB [BIG_DATA_MIB] > seed.json
    backup_bench.py run --state STATE --work DIR --ovrun PATH --rounds N --results FILE
    backup_bench.py download URL FILE CAFILE [--incremental --backing FILE]

Timings:
- ovrun: the whole process (`/usr/bin/time -v`), so its engine calls and polls (the simulated
  engine's phases move one per poll) are in it; besides, from its JSON log and the image's
  mtime: `data` is from the "... to read" line (extents known, local image created) to the last
  write into the local image, and `to written` from that line to "backup point ... written"
  (adds the transfer's and the backup's finalize polls, the SHA-256 of the image, the manifest).
- the official client: only the `client.download(...)` call, timed inside its process (Python
  start-up and import, and the backup/transfer API calls around it, are not included).
Peak RSS: `/usr/bin/time -v`'s maximum resident set size, which for ovrun is the maximum over
ovrun and the children it waited for (qemu-img, qemu-nbd); ovrun's own high-water mark
(VmHWM, sampled from /proc every 20 ms) is reported beside it.
"""
import argparse
import base64
import datetime
import glob
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# seed


def seed(disk_mib, big_mib, big_data_mib):
    """bench01: DISK_MIB, half data in 16 separated ranges (1/32 of the disk every 1/16);
    bench02: BIG_MIB with BIG_DATA_MIB of data in N equal ranges (4, or more to keep each at
    most 1 GiB: qemu-io writes less than 2 GiB at once), one at the start of each 1/N."""
    step, length = disk_mib // 16, disk_mib // 32
    data = [{"offset_mib": i * step, "length_mib": length, "pattern": 0x11 + i} for i in range(16)]
    n = max(4, -(-big_data_mib // 1024))
    big = [{"offset_mib": i * (big_mib // n), "length_mib": big_data_mib // n,
            "pattern": 0x61 + i} for i in range(n)]
    return {
        "storage_domains": [{"name": "data"}],
        "vms": [
            {"name": "bench01", "status": "up",
             "disks": [{"name": "bench_os", "size_mib": disk_mib, "data": data}]},
            {"name": "bench02", "status": "up",
             "disks": [{"name": "bench02_os", "size_mib": big_mib, "data": big}]},
        ],
    }


# ---------------------------------------------------------------------------------------------
# the engine's API


class Engine:
    def __init__(self, state):
        with open(os.path.join(state, "url")) as f:
            self.base = f.read().strip()
        with open(os.path.join(state, "users.json")) as f:
            self.password = json.load(f)["admin@internal"]
        self.ca = os.path.join(state, "pki", "ca.pem")
        self.ssl = ssl.create_default_context(cafile=self.ca)
        token = base64.b64encode(f"admin@internal:{self.password}".encode()).decode()
        self.auth = f"Basic {token}"

    def call(self, method, path, body=None, expect=(200, 201)):
        url = path if path.startswith("https://") else (
            self.base + (path if path.startswith("/ovirt-engine") or path.startswith("/ovsim")
                         else "/ovirt-engine/api" + path))
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": self.auth, "Accept": "application/json",
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.ssl, timeout=120) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {text}")
        return json.loads(text) if text.strip() else None

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body):
        return self.call("POST", path, body)

    def wait(self, path, key, want, failing=(), pause=0.05):
        for _ in range(2000):
            now = self.get(path)
            if now.get(key) == want:
                return now
            if now.get(key) in failing:
                raise RuntimeError(f"{path}: {key} {now.get(key)}")
            time.sleep(pause)
        raise RuntimeError(f"{path} never reached {key}={want}")

    def find(self, collection, name):
        found = self.get(f"/{collection}s?search=name%3D{name}")[collection]
        return found[0]

    def guest_write(self, disk, offset, length, pattern):
        self.call("POST", "/ovsim/admin/guest-write",
                  {"disk": disk, "offset": offset, "length": length, "pattern": pattern},
                  expect=(200, 201, 202, 204))


# ---------------------------------------------------------------------------------------------
# measuring a process


def rss_kib(time_file):
    """The maximum resident set size (KiB) in `/usr/bin/time -v -o FILE`."""
    text = open(time_file).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return rss


def measured(argv, log_file, env=None):
    """Runs ARGV under /usr/bin/time -v; wall seconds, start epoch, time's max RSS (KiB),
    the own VmHWM (KiB) of the measured process, sampled."""
    time_file = log_file + ".time"
    with open(log_file, "w") as log:
        started_epoch = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", time_file] + argv,
                                stdout=log, stderr=log, env=env)
        seen = {"child": None, "hwm": 0}
        try:
            sample(proc, seen)
        except BaseException:
            # Interrupted: stop the measured process (ovrun finalizes the engine's backup on
            # SIGTERM; GNU time then reaps it and exits), or GNU time if it has no child yet.
            try:
                os.kill(int(seen["child"] or proc.pid), signal.SIGTERM)
            except OSError:
                pass
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(open(log_file).read())
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}); log {log_file}")
    return wall, started_epoch, rss_kib(time_file), seen["hwm"]


def sample(proc, seen):
    """Waits for PROC (GNU time), sampling the VmHWM of its child into SEEN."""
    while proc.poll() is None:
        if seen["child"] is None:
            try:
                kids = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
                seen["child"] = kids[0] if kids else None
            except OSError:
                pass
        if seen["child"] is not None:
            try:
                status = open(f"/proc/{seen['child']}/status").read()
                m = re.search(r"VmHWM:\s+(\d+) kB", status)
                if m:
                    seen["hwm"] = max(seen["hwm"], int(m.group(1)))
            except OSError:
                pass
        time.sleep(0.02)


def log_time(line):
    stamp = json.loads(line)["timestamp"]
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-].*)$", stamp)
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + zone).timestamp()


# ---------------------------------------------------------------------------------------------
# the two clients


class Bench:
    def __init__(self, args):
        self.args = args
        self.engine = Engine(args.state)
        self.work = os.path.abspath(args.work)
        self.backups = os.path.join(self.work, "backup")
        self.scratch = os.path.join(self.work, "client")
        os.makedirs(self.backups, exist_ok=True)
        os.makedirs(self.scratch, exist_ok=True)
        self.logs = os.path.join(self.work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.password_file = os.path.join(self.work, "source.password")
        with open(self.password_file, "w") as f:
            f.write(self.engine.password + "\n")
        self.runs = 0

    def vm(self, name, disk_alias):
        vm = self.engine.find("vm", name)
        disk = self.engine.find("disk", disk_alias)
        config = os.path.join(self.work, f"runner-{name}.json")
        with open(config, "w") as f:
            json.dump({
                "format": 1,
                "vm": name,
                "source": {
                    "url": self.engine.base + "/ovirt-engine/api",
                    "user": "admin@internal",
                    "password_file": self.password_file,
                    "password_credential": "source-password",
                    "ca_file": self.engine.ca,
                },
                "target": None,
                "backup_directory": self.backups,
                "checkpoints_file": os.path.join(self.backups, "checkpoints.json"),
                "schedule": {"type": "simple", "pattern": "daily", "time": "02:00", "timezone": "UTC"},
                "timezone": "UTC",
                "due_guard": None,
                "backup": {
                    "incremental_enabled": True,
                    "full_backup_frequency": "never",
                    "full_backup_day": "sunday",
                    "anchor_date": "2024-01-01",
                    "max_incremental_chain_length": 100,
                    "force_full_backup_days": 0,
                },
                "retention": {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0,
                              "max_backup_age_days": 0},
                "restore": None,
            }, f, indent=2)
        return {"name": name, "id": vm["id"], "disk": disk["id"],
                "size": int(disk["provisioned_size"]), "config": config,
                "dir": os.path.join(self.backups, name)}

    # --- ovrun -------------------------------------------------------------------------------

    def manifests(self, vm):
        names = sorted(glob.glob(os.path.join(vm["dir"], "*.manifest.json")))
        return [json.load(open(n)) for n in names]

    def ovrun(self, vm, full=False):
        """One `ovrun backup`; timings, RSS, the new manifest."""
        self.runs += 1
        before = {m["point"] for m in self.manifests(vm)} if os.path.isdir(vm["dir"]) else set()
        log_file = os.path.join(self.logs, f"ovrun-{self.runs:03d}.log")
        argv = [self.args.ovrun, "backup", "--config", vm["config"]] + (["--full"] if full else [])
        env = dict(os.environ, OVRUN_LOG_FORMAT="json")
        wall, start, rss, hwm = measured(argv, log_file, env)
        new = [m for m in self.manifests(vm) if m["point"] not in before]
        assert len(new) == 1, f"one new point expected, log {log_file}"
        manifest = new[0]
        disk = manifest["disks"][0]
        to_read = written = reported = None
        for line in open(log_file):
            if not line.startswith("{"):
                continue
            message = json.loads(line).get("fields", {}).get("message", "")
            if " to read (" in message and to_read is None:
                to_read = log_time(line)
            if message.startswith("backup point ") and " written" in message:
                written = log_time(line)
            said = re.match(r"read .* in ([0-9.]+) s", message)
            if said:
                reported = float(said.group(1))
        image = os.path.join(vm["dir"], disk["file"])
        last_write = os.stat(image).st_mtime
        return {
            "wall": wall, "rss_kib": rss, "hwm_kib": hwm,
            "data": last_write - to_read,
            "to_written": written - to_read,
            "reported": reported,
            "before_data": to_read - start,
            "after_data": start + wall - last_write,
            "kind": manifest["kind"], "bytes": disk["bytes_transferred"],
            "file_size": disk["file_size"], "manifest": manifest, "image": image, "log": log_file,
        }

    # --- the official client -----------------------------------------------------------------

    def client(self, vm, out, from_checkpoint=None, backing=None):
        """A backup and a transfer as backup_vm.py makes them, then client.download timed."""
        e = self.engine
        api_started = time.perf_counter()
        request = {"disks": {"disk": [{"id": vm["disk"]}]}}
        if from_checkpoint:
            request["from_checkpoint_id"] = from_checkpoint
        backup = e.post(f"/vms/{vm['id']}/backups", request)
        path = f"/vms/{vm['id']}/backups/{backup['id']}"
        e.wait(path, "phase", "ready", failing=("failed",))
        transfer = e.post("/imagetransfers", {
            "disk": {"id": vm["disk"]}, "backup": {"id": backup["id"]},
            "direction": "download", "format": "raw",
            "inactivity_timeout": 120})
        href = f"/imagetransfers/{transfer['id']}"
        ready = e.wait(href, "phase", "transferring",
                       failing=("finished_failure", "paused_system", "cancelled_system"))
        api = time.perf_counter() - api_started
        self.runs += 1
        log_file = os.path.join(self.logs, f"client-{self.runs:03d}.log")
        argv = [sys.executable, os.path.join(HERE, "backup_bench.py"), "download",
                ready["transfer_url"], out, e.ca]
        if backing:
            argv += ["--incremental", "--backing", backing]
        try:
            process_wall, _, rss, _ = measured(argv, log_file)
        finally:
            api_started = time.perf_counter()
            e.post(f"{href}/finalize", {})
            e.wait(href, "phase", "finished_success", failing=("finished_failure",))
            e.post(f"{path}/finalize", {})
            e.wait(path, "phase", "succeeded", failing=("failed",))
            api += time.perf_counter() - api_started
        call = json.loads(open(log_file).read().strip().splitlines()[-1])["download_seconds"]
        return {"call": call, "process_wall": process_wall, "rss_kib": rss, "api": api,
                "file_size": os.path.getsize(out)}

    # --- guest activity ----------------------------------------------------------------------

    def write(self, vm, total_mib, pieces, shift_mib, pattern):
        """TOTAL_MIB of guest writes in PIECES equal ranges spread evenly over the disk."""
        length = total_mib * MIB // pieces
        stride = vm["size"] // pieces
        for i in range(pieces):
            self.engine.guest_write(vm["disk"], i * stride + shift_mib * MIB, length, pattern)


def median(values):
    return statistics.median(values)


def fmt_s(x):
    return f"{x:.2f}"


def run(args):
    b = Bench(args)
    rounds = args.rounds
    results = {"rounds": rounds}
    a = b.vm("bench01", "bench_os")
    big = b.vm("bench02", "bench02_os")
    print(f"bench01: {a['size'] // MIB} MiB disk; bench02: {big['size'] // MIB} MiB disk",
          flush=True)

    # 1. Full backups, interleaved, one unmeasured warm-up of each.
    full_ovrun, full_client = [], []
    for r in range(rounds + 1):
        warm = r == 0
        order = ("ovrun", "client") if r % 2 == 0 else ("client", "ovrun")
        for who in order:
            if who == "ovrun":
                shutil.rmtree(a["dir"], ignore_errors=True)
                x = b.ovrun(a, full=True)
                assert x["kind"] == "full"
                if warm:
                    results["warmup_ovrun_rss_kib"] = x["rss_kib"]
                else:
                    full_ovrun.append(x)
                print(f"  full {'warm-up' if warm else r} ovrun: wall {fmt_s(x['wall'])} s, data "
                      f"{fmt_s(x['data'])} s, read {x['bytes'] // MIB} MiB, "
                      f"RSS {x['rss_kib'] // 1024} MiB (own {x['hwm_kib'] // 1024})", flush=True)
            else:
                out = os.path.join(b.scratch, "full.qcow2")
                c = b.client(a, out)
                if not warm:
                    full_client.append(c)
                print(f"  full {'warm-up' if warm else r} client: download {fmt_s(c['call'])} s "
                      f"(process {fmt_s(c['process_wall'])} s), RSS {c['rss_kib'] // 1024} MiB",
                      flush=True)
        out = os.path.join(b.scratch, "full.qcow2")
        if r == rounds:
            same = subprocess.run(["qemu-img", "compare", out, full_ovrun[-1]["image"]],
                                  capture_output=True, text=True)
            results["full_images_identical"] = same.returncode == 0
            print(f"  qemu-img compare client full vs ovrun full: "
                  f"{same.stdout.strip() or same.stderr.strip()}", flush=True)
        os.remove(out)
    results["full"] = {
        "ovrun_wall": [x["wall"] for x in full_ovrun],
        "ovrun_data": [x["data"] for x in full_ovrun],
        "ovrun_to_written": [x["to_written"] for x in full_ovrun],
        "ovrun_before_data": [x["before_data"] for x in full_ovrun],
        "ovrun_after_data": [x["after_data"] for x in full_ovrun],
        "ovrun_rss_kib": [x["rss_kib"] for x in full_ovrun],
        "ovrun_hwm_kib": [x["hwm_kib"] for x in full_ovrun],
        "ovrun_bytes": full_ovrun[-1]["bytes"],
        "ovrun_reported": [x["reported"] for x in full_ovrun if x["reported"] is not None],
        "client_call": [c["call"] for c in full_client],
        "client_api": [c["api"] for c in full_client],
        "client_process": [c["process_wall"] for c in full_client],
        "client_rss_kib": [c["rss_kib"] for c in full_client],
    }

    # 2. Incrementals after WRITE_MIB of guest writes: the last full of ovrun is the base.
    def incrementals(vm, total_mib, pieces, label, with_client, first_shift):
        out = {"ovrun": [], "client": []}
        for r in range(rounds):
            shift = first_shift + r
            b.write(vm, total_mib, pieces, shift, 0x40 + (first_shift + r) % 64)
            parent = b.manifests(vm)[-1]
            order = ("ovrun", "client") if r % 2 == 0 else ("client", "ovrun")
            if not with_client:
                order = ("ovrun",)
            for who in order:
                if who == "ovrun":
                    x = b.ovrun(vm)
                    assert x["kind"] == "incremental", x["kind"]
                    assert x["manifest"]["from_checkpoint"] == parent["checkpoint"]
                    out["ovrun"].append(x)
                    print(f"  {label} {r + 1} ovrun: wall {fmt_s(x['wall'])} s, data "
                          f"{fmt_s(x['data'])} s, read {x['bytes'] / MIB:.2f} MiB, "
                          f"RSS {x['rss_kib'] // 1024} MiB (own {x['hwm_kib'] // 1024})",
                          flush=True)
                else:
                    overlay = os.path.join(b.scratch, f"{vm['name']}-inc.qcow2")
                    backing = os.path.join(vm["dir"], parent["disks"][0]["file"])
                    c = b.client(vm, overlay, from_checkpoint=parent["checkpoint"],
                                 backing=backing)
                    out["client"].append(c)
                    print(f"  {label} {r + 1} client: download {fmt_s(c['call'])} s (process "
                          f"{fmt_s(c['process_wall'])} s), overlay {c['file_size'] / MIB:.1f} "
                          f"MiB", flush=True)
                    c["overlay"] = overlay
            if with_client and r == 0:
                ours = out["ovrun"][-1]["image"]
                same = subprocess.run(["qemu-img", "compare", out["client"][-1]["overlay"], ours],
                                      capture_output=True, text=True)
                out["images_identical"] = same.returncode == 0
                print(f"  qemu-img compare client chain vs ovrun chain: "
                      f"{same.stdout.strip() or same.stderr.strip()}", flush=True)
            for c in out["client"]:
                if os.path.exists(c.get("overlay", "")):
                    os.remove(c["overlay"])
        return {
            "ovrun_wall": [x["wall"] for x in out["ovrun"]],
            "ovrun_data": [x["data"] for x in out["ovrun"]],
            "ovrun_to_written": [x["to_written"] for x in out["ovrun"]],
            "ovrun_before_data": [x["before_data"] for x in out["ovrun"]],
            "ovrun_after_data": [x["after_data"] for x in out["ovrun"]],
            "ovrun_bytes": [x["bytes"] for x in out["ovrun"]],
            "ovrun_file_size": [x["file_size"] for x in out["ovrun"]],
            "ovrun_rss_kib": [x["rss_kib"] for x in out["ovrun"]],
            "ovrun_hwm_kib": [x["hwm_kib"] for x in out["ovrun"]],
            "ovrun_reported": [x["reported"] for x in out["ovrun"] if x["reported"] is not None],
            "client_call": [c["call"] for c in out["client"]],
            "client_api": [c["api"] for c in out["client"]],
            "client_process": [c["process_wall"] for c in out["client"]],
            "client_file_size": [c["file_size"] for c in out["client"]],
            "images_identical": out.get("images_identical"),
        }

    w = args.write_mib
    results["write_mib"] = w
    results["inc_small"] = incrementals(a, w, 64, f"incremental {w} MiB on bench01", True, 0)
    results["inc_large"] = incrementals(a, 4 * w, 64, f"incremental {4 * w} MiB on bench01",
                                        False, 8)

    # 3. The big disk: a full (its peak memory), then the same incrementals.
    shutil.rmtree(big["dir"], ignore_errors=True)
    x = b.ovrun(big, full=True)
    results["big_full"] = {"wall": x["wall"], "data": x["data"], "rss_kib": x["rss_kib"],
                           "hwm_kib": x["hwm_kib"], "bytes": x["bytes"]}
    print(f"  full bench02 ovrun: wall {fmt_s(x['wall'])} s, read {x['bytes'] // MIB} MiB, "
          f"RSS {x['rss_kib'] // 1024} MiB (own {x['hwm_kib'] // 1024})", flush=True)
    results["inc_big"] = incrementals(big, w, 64, f"incremental {w} MiB on bench02", True, 0)

    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    report(results, a, big)


def report(res, a, big):
    f, s, L, g = res["full"], res["inc_small"], res["inc_large"], res["inc_big"]
    w = res["write_mib"]
    n = res["rounds"]
    m = median
    print()
    print(f"Full backup of bench01 ({a['size'] // MIB} MiB, {f['ovrun_bytes'] // MIB} MiB data), "
          f"median of {n}:")
    print("| measure | median (s) | min (s) | ratio to the official client's download |")
    print("|---|---|---|---|")
    cm = m(f["client_call"])
    rows = [
        ("official client: `client.download` call", f["client_call"]),
        ("official client: its process (Python start, import)", f["client_process"]),
        ("official client: its backup/transfer API calls (50 ms polls), not in its timing",
         f["client_api"]),
        ("`ovrun backup --full`: whole run", f["ovrun_wall"]),
        ("`ovrun`: data (\"to read\" to last write)", f["ovrun_data"]),
        ("`ovrun`: \"to read\" to \"written\"", f["ovrun_to_written"]),
        ("`ovrun`: start to \"to read\"", f["ovrun_before_data"]),
        ("`ovrun`: last write to exit", f["ovrun_after_data"]),
    ]
    if f["ovrun_reported"]:
        rows.append(("`ovrun`: its own log line \"read N in S s\"", f["ovrun_reported"]))
    for name, values in rows:
        print(f"| {name} | {m(values):.2f} | {min(values):.2f} | {m(values) / cm:.2f}x |")
    print(f"peak RSS ovrun (time -v, incl. qemu-img/qemu-nbd children): "
          f"{max(f['ovrun_rss_kib']) / 1024:.1f} MiB; ovrun's own VmHWM "
          f"{max(f['ovrun_hwm_kib']) / 1024:.1f} MiB; official client process "
          f"{max(f['client_rss_kib']) / 1024:.1f} MiB")
    print(f"images identical (qemu-img compare): {res.get('full_images_identical')}")
    print()
    print(f"Incremental after {w} MiB of guest writes (64 x {w // 64} MiB), median of {n}:")
    print("| disk | ovrun whole run (s) | ovrun data (s) | client download (s) | "
          "ovrun data / client download | ovrun read (MiB) | ovrun peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for label, r in ((f"bench01 {a['size'] // MIB} MiB, {w} MiB written", s),
                     (f"bench01 {a['size'] // MIB} MiB, {4 * w} MiB written", L),
                     (f"bench02 {big['size'] // MIB} MiB, {w} MiB written", g)):
        client = f"{m(r['client_call']):.2f}" if r["client_call"] else "-"
        ratio = (f"{m(r['ovrun_data']) / m(r['client_call']):.2f}x" if r["client_call"]
                 else "-")
        print(f"| {label} | {m(r['ovrun_wall']):.2f} | {m(r['ovrun_data']):.2f} | {client} | "
              f"{ratio} | {max(r['ovrun_bytes']) / MIB:.2f} | "
              f"{max(r['ovrun_rss_kib']) / 1024:.1f} |")
    limit = w * MIB * 1.01
    print(f"bytes moved by ovrun per {w} MiB incremental: {sorted(set(s['ovrun_bytes']))} "
          f"(limit {int(limit)}): {'OK' if max(s['ovrun_bytes']) <= limit else 'OVER'}")
    print(f"incremental images identical (qemu-img compare): bench01 "
          f"{s['images_identical']}, bench02 {g['images_identical']}")
    print(f"bench02 full ({big['size'] // MIB} MiB disk, {res['big_full']['bytes'] // MIB} MiB data): wall "
          f"{res['big_full']['wall']:.2f} s, RSS {res['big_full']['rss_kib'] / 1024:.1f} MiB "
          f"(own {res['big_full']['hwm_kib'] / 1024:.1f})")
    every = (f["ovrun_rss_kib"] + s["ovrun_rss_kib"] + L["ovrun_rss_kib"] + g["ovrun_rss_kib"]
             + [res["big_full"]["rss_kib"], res.get("warmup_ovrun_rss_kib", 0)])
    print(f"peak RSS of every ovrun run (warm-up included): {max(every) / 1024:.1f} MiB")


# ---------------------------------------------------------------------------------------------
# the official client, in its own process


def download(args):
    from ovirt_imageio import client
    started = time.perf_counter()
    client.download(
        args.url,
        args.filename,
        args.cafile,
        fmt="qcow2",
        incremental=args.incremental,
        backing_file=args.backing,
        backing_format="qcow2" if args.backing else None,
    )
    print(json.dumps({"download_seconds": time.perf_counter() - started}))


def stop(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, stop)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed")
    p.add_argument("disk_mib", type=int)
    p.add_argument("big_mib", type=int)
    p.add_argument("big_data_mib", type=int, nargs="?", default=64)
    p = sub.add_parser("run")
    p.add_argument("--state", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--ovrun", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--write-mib", type=int, default=64)
    p.add_argument("--results", required=True)
    p = sub.add_parser("download")
    p.add_argument("url")
    p.add_argument("filename")
    p.add_argument("cafile")
    p.add_argument("--incremental", action="store_true")
    p.add_argument("--backing")
    args = parser.parse_args()
    if args.command == "seed":
        json.dump(seed(args.disk_mib, args.big_mib, args.big_data_mib), sys.stdout, indent=1)
    elif args.command == "run":
        run(args)
    else:
        download(args)


if __name__ == "__main__":
    main()
