"""`ovrun restore` beside the predecessor's way: merge the chain in four steps (copy the base,
rebase each incremental onto it, commit it, compress the result) and upload the merged image
with the official `ovirt_imageio.client.upload` (issue 6). benches/restore.sh starts a
production and a DR ovsim and calls this.

    restore_bench.py seed-prod DISK_MIB > prod.json
    restore_bench.py seed-dr > dr.json
    restore_bench.py run --prod STATE --dr STATE --work DIR --ovrun PATH --rounds N --results FILE
    restore_bench.py upload FILE URL CAFILE      (the official client, timed in its process)

Timings (wall clock, same machine, same run, rounds interleaved):
- ovrun: the whole `ovrun restore --force` process: login, lookups, per disk the DR disk's
  creation and its polls, the upload transfer, the chain read through qemu-nbd and sent, flush,
  imageio's checksum of the uploaded disk, finalize and polls, then the VM's creation and its
  disk attachment.
- the four steps: each step's commands (cp, qemu-img rebase -u, qemu-img commit, qemu-img
  convert -c) timed together; then the official client's `upload(...)` call alone, timed inside
  its process, on a disk and transfer this script creates first (not timed).
Scratch space: the bytes allocated (st_blocks) under the folder each method writes into,
sampled every 20 ms: the merge folder for the four steps; for ovrun its TMPDIR (qemu-nbd's
socket) and the backup directory's growth (its restore log line).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import backup_bench as bb  # noqa: E402

MIB = 1 << 20


def seed_prod(disk_mib):
    """bench01: DISK_MIB, half data in 16 ranges (as the backup bench); bench03: a 2 TiB disk
    holding 1 GiB; bench04: a 16 GiB disk holding the same 1 GiB at the same offsets' shape."""
    step, length = disk_mib // 16, disk_mib // 32
    data = [{"offset_mib": i * step, "length_mib": length, "pattern": 0x11 + i} for i in range(16)]

    def gib_in(size_mib):
        n = 4
        return [{"offset_mib": i * (size_mib // n), "length_mib": 1024 // n, "pattern": 0x61 + i}
                for i in range(n)]

    return {
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "data"}],
        "vms": [
            {"name": "bench01", "status": "up",
             "disks": [{"name": "bench_os", "size_mib": disk_mib, "data": data}]},
            {"name": "bench03", "status": "up",
             "disks": [{"name": "bench03_os", "size_mib": 2 * 1024 * 1024,
                        "data": gib_in(2 * 1024 * 1024)}]},
            {"name": "bench04", "status": "up",
             "disks": [{"name": "bench04_os", "size_mib": 16 * 1024, "data": gib_in(16 * 1024)}]},
        ],
    }


def seed_dr():
    return {"clusters": [{"name": "DR-Cluster"}], "storage_domains": [{"name": "dr-data"}],
            "vms": []}


def allocated(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Scratch:
    """Samples the bytes allocated under folders while a block runs; `peak` above the start."""

    def __init__(self, *folders):
        self.folders = folders
        self.peak = 0
        self._stop = threading.Event()

    def _now(self):
        return sum(allocated(f) for f in self.folders)

    def __enter__(self):
        self.base = self._now()

        def loop():
            while not self._stop.is_set():
                self.peak = max(self.peak, self._now() - self.base)
                time.sleep(0.02)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, self._now() - self.base)


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Bench:
    def __init__(self, args):
        self.args = args
        self.prod = bb.Engine(args.prod)
        self.dr = bb.Engine(args.dr)
        self.work = os.path.abspath(args.work)
        self.backups = os.path.join(self.work, "backup")
        self.tmp = os.path.join(self.work, "ovrun-tmp")
        self.merge = os.path.join(self.work, "merge")
        self.logs = os.path.join(self.work, "logs")
        for d in (self.backups, self.tmp, self.merge, self.logs):
            os.makedirs(d, exist_ok=True)
        self.passwords = {}
        for side, engine in (("source", self.prod), ("target", self.dr)):
            path = os.path.join(self.work, f"{side}.password")
            with open(path, "w") as f:
                f.write(engine.password + "\n")
            self.passwords[side] = path
        self.runs = 0

    def access(self, side, engine):
        return {"url": engine.base + "/ovirt-engine/api", "user": "admin@internal",
                "password_file": self.passwords[side],
                "password_credential": f"{side}-password", "ca_file": engine.ca}

    def config(self, name):
        path = os.path.join(self.work, f"runner-{name}.json")
        with open(path, "w") as f:
            json.dump({
                "format": 1, "vm": name,
                "source": self.access("source", self.prod),
                "target": self.access("target", self.dr),
                "backup_directory": self.backups,
                "checkpoints_file": os.path.join(self.backups, "checkpoints.json"),
                "schedule": {"type": "simple", "pattern": "daily", "time": "02:00", "timezone": "UTC"}, "timezone": "UTC",
                "due_guard": None,
                "backup": {"incremental_enabled": True, "full_backup_frequency": "never",
                           "full_backup_day": "sunday", "anchor_date": "2024-01-01",
                           "max_incremental_chain_length": 100, "force_full_backup_days": 0},
                "retention": {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0,
                              "max_backup_age_days": 0},
                "restore": {"vm_name": f"{name}_dr", "target_cluster_name": "DR-Cluster",
                            "target_storage_domain_name": "dr-data",
                            "disk_interface": "virtio_scsi", "timeout_minutes": 120,
                            "auto_start_restored_vm": False, "replace_existing_vm": True,
                            "backup_old_vm": False,
                            "restore_log_directory": os.path.join(self.backups, "restore_logs")},
            }, f, indent=2)
        return path

    def backup(self, config, full=False):
        argv = [self.args.ovrun, "backup", "--config", config] + (["--full"] if full else [])
        env = dict(os.environ, OVRUN_LOG_FORMAT="json")
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def manifests(self, name):
        folder = os.path.join(self.backups, name)
        names = sorted(n for n in os.listdir(folder) if n.endswith(".manifest.json"))
        return [json.load(open(os.path.join(folder, n))) for n in names]

    def restore(self, name, config):
        """One `ovrun restore --force`: wall, RSS, scratch peak, the log entry."""
        self.runs += 1
        log_file = os.path.join(self.logs, f"restore-{self.runs:03d}.log")
        env = dict(os.environ, OVRUN_LOG_FORMAT="json", TMPDIR=self.tmp)
        argv = [self.args.ovrun, "restore", "--config", config, "--force"]
        with Scratch(self.tmp, self.backups) as scratch:
            wall, _start, rss, hwm = bb.measured(argv, log_file, env)
        log = os.path.join(self.backups, "restore_logs", f"{name}.jsonl")
        entry = json.loads(open(log).read().splitlines()[-1])
        assert entry["result"] == "ok", entry
        return {"wall": wall, "rss_kib": rss, "hwm_kib": hwm, "scratch": scratch.peak,
                "bytes": entry["bytes"], "disk": entry["disks"][0]["disk_id"],
                "upload": entry["disks"][0]["seconds"]}

    def four_steps(self, name):
        """The predecessor's merge of the newest chain, each step timed; the merged file."""
        chain = self.manifests(name)
        folder = os.path.join(self.backups, name)
        files = [os.path.join(folder, m["disks"][0]["file"]) for m in chain]
        base = os.path.join(self.merge, "base.qcow2")
        final = os.path.join(self.merge, "final.qcow2")
        times = {}
        with Scratch(self.merge) as scratch:
            t = time.perf_counter()
            sh("cp", files[0], base)
            times["copy"] = time.perf_counter() - t
            times["rebase"] = times["commit"] = 0.0
            for i, inc in enumerate(files[1:]):
                tmp = os.path.join(self.merge, f"inc-{i}.qcow2")
                t = time.perf_counter()
                sh("cp", inc, tmp)
                sh("qemu-img", "rebase", "-u", "-F", "qcow2", "-b", "base.qcow2", tmp)
                times["rebase"] += time.perf_counter() - t
                t = time.perf_counter()
                sh("qemu-img", "commit", "-q", tmp)
                os.unlink(tmp)
                times["commit"] += time.perf_counter() - t
            t = time.perf_counter()
            sh("qemu-img", "convert", "-c", "-f", "qcow2", "-O", "qcow2", base, final)
            times["compress"] = time.perf_counter() - t
        os.unlink(base)
        times["merge"] = sum(times.values())
        return final, times, scratch.peak, len(files)

    def upload(self, final, size):
        """A DR disk and an upload transfer (not timed), then client.upload timed."""
        e = self.dr
        disk = e.post("/disks", {"name": "peer_upload", "alias": "peer_upload", "format": "cow",
                                 "sparse": "true", "provisioned_size": str(size),
                                 "storage_domains": {"storage_domain": [{"name": "dr-data"}]}})
        e.wait(f"/disks/{disk['id']}", "status", "ok", ("illegal",))
        transfer = e.post("/imagetransfers", {"disk": {"id": disk["id"]}, "direction": "upload",
                                              "format": "raw"})
        href = f"/imagetransfers/{transfer['id']}"
        now = e.wait(href, "phase", "transferring")
        out = subprocess.run([sys.executable, __file__, "upload", final, now["transfer_url"],
                              e.ca], check=True, capture_output=True, text=True)
        seconds = float(out.stdout.strip())
        e.post(f"{href}/finalize", {})
        e.wait(href, "phase", "finished_success", ("finished_failure",))
        e.wait(f"/disks/{disk['id']}", "status", "ok", ("illegal",))
        return disk["id"], seconds

    def dr_file(self, disk_id):
        return os.path.join(self.args.dr, "disks", f"{disk_id}.qcow2")

    def prod_file(self, alias):
        return os.path.join(self.args.prod, "disks", f"{self.prod.find('disk', alias)['id']}.qcow2")

    def same(self, a, b):
        return subprocess.run(["qemu-img", "compare", "-U", "-q", a, b]).returncode == 0

    def remove_dr_disk(self, disk_id):
        self.dr.call("DELETE", f"/disks/{disk_id}")


def median(values):
    return statistics.median(values)


def run(args):
    b = Bench(args)
    results = {"rounds": args.rounds}
    config = b.config("bench01")
    disk = b.prod.find("disk", "bench_os")
    size = int(disk["provisioned_size"])
    prod_disk = b.prod_file("bench_os")
    print("bench01: a full backup and 5 incrementals (64 MiB of guest writes before each)...",
          flush=True)
    b.backup(config, full=True)
    for n in range(5):
        for i in range(64):
            offset = ((i * 97 + n * 13) % (size // MIB - 1)) * MIB
            b.prod.guest_write(disk["id"], offset, MIB, 0x71 + n)
        b.backup(config)
    chain = b.manifests("bench01")
    assert [m["kind"] for m in chain] == ["full"] + ["incremental"] * 5, chain

    ovrun_runs, peer_runs = [], []
    for r in range(args.rounds):
        order = ["ovrun", "peer"] if r % 2 == 0 else ["peer", "ovrun"]
        for who in order:
            if who == "ovrun":
                res = b.restore("bench01", config)
                res["equal"] = b.same(b.dr_file(res["disk"]), prod_disk)
                ovrun_runs.append(res)
                print(f"  ovrun restore: {res['wall']:.2f} s, scratch {res['scratch']} B, "
                      f"equal={res['equal']}", flush=True)
            else:
                final, times, peak, links = b.four_steps("bench01")
                disk_id, up = b.upload(final, size)
                equal = b.same(b.dr_file(disk_id), prod_disk)
                b.remove_dr_disk(disk_id)
                os.unlink(final)
                peer_runs.append({"times": times, "upload": up, "scratch": peak,
                                  "total": times["merge"] + up, "equal": equal, "links": links})
                print(f"  four steps {times['merge']:.2f} s + upload {up:.2f} s, scratch "
                      f"{peak} B, equal={equal}", flush=True)
    results["chain"] = {"points": len(chain), "full_file": chain[0]["disks"][0]["file_size"],
                        "files": sum(m["disks"][0]["file_size"] for m in chain)}
    results["ovrun"] = ovrun_runs
    results["peer"] = peer_runs

    print("bench03 (2 TiB, 1 GiB data) and bench04 (16 GiB, 1 GiB data): full backups, then "
          "restores...", flush=True)
    big = {}
    for name, alias in (("bench03", "bench03_os"), ("bench04", "bench04_os")):
        cfg = b.config(name)
        b.backup(cfg, full=True)
        runs = []
        for _ in range(args.rounds):
            res = b.restore(name, cfg)
            runs.append(res)
        res["equal"] = b.same(b.dr_file(res["disk"]), b.prod_file(alias))
        big[name] = runs
        print(f"  {name}: {[round(x['wall'], 2) for x in runs]} s, equal={res['equal']}",
              flush=True)
    results["big"] = big
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    report(results)


def report(res):
    o, p = res["ovrun"], res["peer"]
    mo = median([x["wall"] for x in o])
    mp = median([x["total"] for x in p])
    print()
    print(f"chain: {res['chain']['points']} points, files {res['chain']['files'] / MIB:.0f} MiB "
          f"(full {res['chain']['full_file'] / MIB:.0f} MiB)")
    print(f"| method | median of {res['rounds']} (s) | min (s) | peak scratch (MiB) | ratio |")
    print("|---|---|---|---|---|")
    print(f"| four steps + official upload | {mp:.2f} | {min(x['total'] for x in p):.2f} | "
          f"{max(x['scratch'] for x in p) / MIB:.0f} | 1.0x |")
    for step in ("copy", "rebase", "commit", "compress"):
        print(f"| - {step} | {median([x['times'][step] for x in p]):.2f} | | | |")
    print(f"| - client.upload | {median([x['upload'] for x in p]):.2f} | | | |")
    print(f"| `ovrun restore`, whole run | {mo:.2f} | {min(x['wall'] for x in o):.2f} | "
          f"{max(x['scratch'] for x in o) / MIB:.2f} | {mo / mp:.2f}x |")
    print(f"| - its disk (create to finalized) | {median([x['upload'] for x in o]):.2f} | | | |")
    print(f"ovrun peak RSS {max(x['rss_kib'] for x in o) / 1024:.0f} MiB (own VmHWM "
          f"{max(x['hwm_kib'] for x in o) / 1024:.0f} MiB); bytes sent {o[0]['bytes']}")
    print(f"all equal to production: ovrun {all(x['equal'] for x in o)}, "
          f"peer {all(x['equal'] for x in p)}")
    for name, runs in res["big"].items():
        print(f"{name}: median {median([x['wall'] for x in runs]):.2f} s, "
              f"bytes {runs[0]['bytes']}, RSS {max(x['rss_kib'] for x in runs) / 1024:.0f} MiB, "
              f"scratch {max(x['scratch'] for x in runs)} B")


def upload(args):
    from ovirt_imageio import client
    t = time.perf_counter()
    client.upload(args.file, args.url, args.cafile)
    print(f"{time.perf_counter() - t:.3f}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed-prod")
    p.add_argument("disk_mib", type=int)
    sub.add_parser("seed-dr")
    p = sub.add_parser("run")
    for flag in ("--prod", "--dr", "--work", "--ovrun", "--results"):
        p.add_argument(flag, required=True)
    p.add_argument("--rounds", type=int, default=3)
    p = sub.add_parser("upload")
    p.add_argument("file")
    p.add_argument("url")
    p.add_argument("cafile")
    p = sub.add_parser("report")
    p.add_argument("results")
    args = parser.parse_args()
    if args.command == "seed-prod":
        json.dump(seed_prod(args.disk_mib), sys.stdout)
    elif args.command == "seed-dr":
        json.dump(seed_dr(), sys.stdout)
    elif args.command == "run":
        run(args)
    elif args.command == "upload":
        upload(args)
    elif args.command == "report":
        report(json.load(open(args.results)))


if __name__ == "__main__":
    main()
