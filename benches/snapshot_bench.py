"""`ovrun backup` by the snapshot method beside the backup API, on a running ovsim (issue 13).

benches/snapshot.sh starts ovsim seeded by backup_bench.py's `seed` (bench01: DISK_MIB disk, half
data in 16 ranges; bench02: BIG_MIB disk) and runs this script:

    snapshot_bench.py run --state STATE --work DIR --ovrun PATH --rounds N --results FILE

It reuses backup_bench.py's Engine, Bench (one `ovrun backup` measured under /usr/bin/time -v,
with its data time from the JSON log and the image's mtime), `measured` and `median`. Each VM
gets two runner configs that differ only in `backup.backup_method` (`backup_api`, `snapshot`),
each with its own backup directory, so the two methods' chains never mix.

1. Full backups of bench01 by each method (`ovrun backup --full`), interleaved over ROUNDS
   rounds after one unmeasured warm-up of each (the order alternates). Before each measured
   run the VM's ovrun snapshots are removed (not timed), so neither method pays for removing
   the other's (or its own previous) kept snapshot. The two methods' last full images are
   compared (`qemu-img compare`: must be identical).
2. Incrementals after 64 MiB of guest writes (64 x 1 MiB spread over the disk, as
   backup_bench's `write`), on bench01 and on bench02 (4x the disk, the same writes: the time
   follows the written data, not the disk's size). Per round, in this order:
   - a snapshot-method full as the base (not timed; it keeps its snapshot);
   - the 64 MiB of writes;
   - the snapshot-method incremental (timed: its snapshot, the `shallow` transfer of the layer
     above the kept snapshot, and the removal of that older snapshot, whose 64 MiB layer ovsim
     merges); its bytes_transferred must be at most the written clusters (64 KiB qcow2
     clusters); its chain is compared with the ovsim disk, and only its kept snapshot may be
     left on the VM;
   - that kept snapshot removed (not timed): a backup-API run removes every ovrun snapshot that
     its own catalog does not keep, so without this the backup-API run would pay for the merge;
   - the backup-API incremental of the same writes (timed; from its previous checkpoint), its
     chain compared with the disk.
   The order cannot alternate: a backup-API run would remove the snapshot chain's kept
   snapshot, and the snapshot-method run would then take a full.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from backup_bench import MIB, Bench, fmt_s, median  # noqa: E402

METHODS = ("backup_api", "snapshot")
CLUSTER = 64 * 1024
WRITE_MIB = 64
PIECES = 64


def cluster_limit(ranges):
    """The bytes of the qcow2 clusters that RANGES (offset, length) touch: each range widened
    to 64 KiB clusters, overlaps counted once."""
    spans = sorted((o // CLUSTER * CLUSTER, -(-(o + n) // CLUSTER) * CLUSTER) for o, n in ranges)
    total, end = 0, 0
    for start, stop in spans:
        start = max(start, end)
        if stop > start:
            total += stop - start
            end = stop
    return total


def compare(a, b):
    """`qemu-img compare -U A B`: (identical, what it said)."""
    out = subprocess.run(["qemu-img", "compare", "-U", a, b], capture_output=True, text=True)
    return out.returncode == 0, (out.stdout.strip() or out.stderr.strip())


class SnapshotBench(Bench):
    """backup_bench's Bench with a runner config per backup method, its own backup directory
    each, and the VM's snapshots and disks looked at through the engine's API."""

    def vm(self, name, disk_alias, backup_method):
        vm = super().vm(name, disk_alias)
        with open(vm["config"]) as f:
            config = json.load(f)
        os.remove(vm["config"])
        backups = os.path.join(self.work, f"backup-{backup_method}")
        os.makedirs(backups, exist_ok=True)
        config["backup_directory"] = backups
        config["checkpoints_file"] = os.path.join(backups, "checkpoints.json")
        config["backup"]["backup_method"] = backup_method
        path = os.path.join(self.work, f"runner-{name}-{backup_method}.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        vm.update(config=path, dir=os.path.join(backups, name), method=backup_method,
                  file=os.path.join(self.args.state, "disks", f"{vm['disk']}.qcow2"))
        return vm

    def backup(self, vm, kind):
        """One measured `ovrun backup` of VM by its method, checked to be a KIND point."""
        x = self.ovrun(vm, full=kind == "full")
        got = (x["kind"], (x["manifest"].get("method") or {}).get("name"))
        assert got == (kind, vm["method"]), f"{kind} by {vm['method']} expected, got {got}: " \
            f"log {x['log']}"
        return x

    def ovrun_snapshots(self, vm):
        listed = self.engine.get(f"/vms/{vm['id']}/snapshots").get("snapshot", [])
        return [s for s in listed if s.get("snapshot_type") != "active"
                and (s.get("description") or "").startswith("ovrun ")]

    def clear_snapshots(self, vm):
        """Removes every ovrun snapshot of VM (not timed): waits until each is gone (its layer
        merged) and the disk is `ok` again."""
        e = self.engine
        for s in self.ovrun_snapshots(vm):
            href = f"/vms/{vm['id']}/snapshots/{s['id']}"
            e.wait(href, "snapshot_status", "ok")
            e.call("DELETE", href, expect=(200, 202, 204))
            for _ in range(6000):
                now = e.call("GET", href, expect=(200, 404))
                if not now or now.get("id") != s["id"]:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"snapshot {s['id']} of {vm['name']} was never removed")
        e.wait(f"/disks/{vm['disk']}", "status", "ok")

    def write(self, vm, total_mib, pieces, shift_mib, pattern):
        """backup_bench's write (TOTAL_MIB in PIECES equal ranges spread evenly over the disk);
        the ranges written, (offset, length)."""
        length = total_mib * MIB // pieces
        stride = vm["size"] // pieces
        ranges = [(i * stride + shift_mib * MIB, length) for i in range(pieces)]
        for offset, n in ranges:
            self.engine.guest_write(vm["disk"], offset, n, pattern)
        return ranges


def summary(runs):
    """The lists results.json keeps of measured runs."""
    keys = ("wall", "data", "to_written", "before_data", "after_data", "rss_kib", "hwm_kib",
            "bytes", "file_size")
    out = {k: [x[k] for x in runs] for k in keys}
    out["reported"] = [x["reported"] for x in runs if x["reported"] is not None]
    return out


def line(label, x):
    return (f"  {label}: wall {fmt_s(x['wall'])} s, data {fmt_s(x['data'])} s, read "
            f"{x['bytes']:,} bytes, RSS {x['rss_kib'] // 1024} MiB (own {x['hwm_kib'] // 1024})")


def run(args):
    b = SnapshotBench(args)
    rounds = args.rounds
    a = {m: b.vm("bench01", "bench_os", m) for m in METHODS}
    big = {m: b.vm("bench02", "bench02_os", m) for m in METHODS}
    size_a, size_big = a["snapshot"]["size"], big["snapshot"]["size"]
    res = {"rounds": rounds, "disk_mib": size_a // MIB, "big_mib": size_big // MIB,
           "write_mib": WRITE_MIB, "pieces": PIECES, "cluster": CLUSTER, "failures": []}
    failures = res["failures"]
    print(f"bench01: {size_a // MIB} MiB disk; bench02: {size_big // MIB} MiB disk", flush=True)

    # 1. Full backups of bench01, interleaved, one unmeasured warm-up of each.
    full = {m: [] for m in METHODS}
    warm = {}
    for r in range(rounds + 1):
        order = METHODS if r % 2 == 0 else METHODS[::-1]
        for method in order:
            vm = a[method]
            b.clear_snapshots(vm)
            shutil.rmtree(vm["dir"], ignore_errors=True)
            x = b.backup(vm, "full")
            if r == 0:
                warm[method] = {"wall": x["wall"], "data": x["data"], "rss_kib": x["rss_kib"]}
            else:
                full[method].append(x)
            print(line(f"full {'warm-up' if r == 0 else r} {method}", x), flush=True)
    same, said = compare(full["backup_api"][-1]["image"], full["snapshot"][-1]["image"])
    print(f"  qemu-img compare backup_api full vs snapshot full: {said}", flush=True)
    if not same:
        failures.append(f"the two methods' full images differ: {said}")
    res["full"] = {m: summary(full[m]) for m in METHODS}
    res["full"]["warmup"] = warm
    res["full"]["images_identical"] = same
    for key in ("wall", "data"):
        res["full"][f"ratio_{key}"] = (median(res["full"]["snapshot"][key])
                                       / median(res["full"]["backup_api"][key]))

    # 2. Incrementals after 64 MiB of writes: snapshot method (on a fresh snapshot-method full
    # each round), then the backup API from its previous checkpoint.
    def incrementals(vms, label, first_shift):
        snap, api = vms["snapshot"], vms["backup_api"]
        out = {"snapshot": [], "backup_api": [], "limit": [], "snapshot_chain_equals_disk": [],
               "backup_api_chain_equals_disk": [], "only_kept_snapshot_left": []}
        if not b.manifests(api):
            b.clear_snapshots(api)
            x = b.backup(api, "full")
            print(line(f"{label} base: full backup_api (not timed)", x), flush=True)
        for r in range(rounds):
            b.clear_snapshots(snap)
            shutil.rmtree(snap["dir"], ignore_errors=True)
            base = b.backup(snap, "full")
            print(line(f"{label} {r + 1} base: full snapshot (not timed)", base), flush=True)
            ranges = b.write(snap, WRITE_MIB, PIECES, first_shift + r, 0x40 + (first_shift + r) % 64)
            limit = cluster_limit(ranges)
            out["limit"].append(limit)

            x = b.backup(snap, "incremental")
            assert x["manifest"]["parent"] == base["manifest"]["point"], x["log"]
            out["snapshot"].append(x)
            print(line(f"{label} {r + 1} snapshot", x) + f" (limit {limit:,})", flush=True)
            if x["bytes"] > limit:
                failures.append(f"{label} {r + 1}: snapshot incremental read {x['bytes']:,} "
                                f"bytes, more than the written clusters ({limit:,})")
            same, said = compare(x["image"], snap["file"])
            out["snapshot_chain_equals_disk"].append(same)
            print(f"    qemu-img compare snapshot chain vs the ovsim disk: {said}", flush=True)
            if not same:
                failures.append(f"{label} {r + 1}: the snapshot chain differs from the disk")
            left = [s["id"] for s in b.ovrun_snapshots(snap)]
            kept = x["manifest"]["method"].get("snapshot")
            only = left == [kept]
            out["only_kept_snapshot_left"].append(only)
            if not only:
                failures.append(f"{label} {r + 1}: ovrun snapshots left {left}, kept {kept}")

            b.clear_snapshots(snap)
            y = b.backup(api, "incremental")
            out["backup_api"].append(y)
            print(line(f"{label} {r + 1} backup_api", y), flush=True)
            same, said = compare(y["image"], api["file"])
            out["backup_api_chain_equals_disk"].append(same)
            print(f"    qemu-img compare backup_api chain vs the ovsim disk: {said}", flush=True)
            if not same:
                failures.append(f"{label} {r + 1}: the backup-API chain differs from the disk")
        return {"snapshot": summary(out["snapshot"]), "backup_api": summary(out["backup_api"]),
                **{k: v for k, v in out.items() if k not in METHODS}}

    res["inc_bench01"] = incrementals(a, "incremental 64 MiB on bench01", 0)
    res["inc_bench02"] = incrementals(big, "incremental 64 MiB on bench02", 0)
    s1, s2 = res["inc_bench01"]["snapshot"], res["inc_bench02"]["snapshot"]
    res["big_over_small_snapshot_data"] = median(s2["data"]) / median(s1["data"])
    res["big_over_small_snapshot_wall"] = median(s2["wall"]) / median(s1["wall"])

    with open(args.results, "w") as f:
        json.dump(res, f, indent=2)
    report(res)
    if failures:
        print("\nFAILED:\n" + "\n".join(f"- {x}" for x in failures))
        sys.exit(1)


def report(res):
    m, n = median, res["rounds"]
    f = res["full"]
    api, snap = f["backup_api"], f["snapshot"]
    print()
    print(f"Full backup of bench01 ({res['disk_mib']} MiB, {api['bytes'][-1]:,} bytes of data), "
          f"median of {n} (min):")
    print("| measure | backup_api | snapshot | snapshot / backup_api |")
    print("|---|---|---|---|")
    for name, key in (("`ovrun backup --full`, whole run (s)", "wall"),
                      ("data: \"to read\" to last write (s)", "data"),
                      ("start to \"to read\" (s)", "before_data"),
                      ("last write to exit (s)", "after_data")):
        print(f"| {name} | {m(api[key]):.2f} ({min(api[key]):.2f}) | "
              f"{m(snap[key]):.2f} ({min(snap[key]):.2f}) | {m(snap[key]) / m(api[key]):.2f}x |")
    print(f"| bytes read | {max(api['bytes']):,} | {max(snap['bytes']):,} | |")
    print(f"| peak RSS, time -v (MiB) | {max(api['rss_kib']) / 1024:.1f} | "
          f"{max(snap['rss_kib']) / 1024:.1f} | |")
    print(f"full images identical (qemu-img compare): {f['images_identical']}")
    print()
    print(f"Incremental after {res['write_mib']} MiB of guest writes ({res['pieces']} x "
          f"{res['write_mib'] // res['pieces']} MiB), median of {n} (min):")
    print("| disk | method | whole run (s) | data (s) | start to \"to read\" (s) | "
          "last write to exit (s) | bytes read | written clusters | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in ((f"bench01 {res['disk_mib']} MiB", res["inc_bench01"]),
                     (f"bench02 {res['big_mib']} MiB", res["inc_bench02"])):
        for method in ("snapshot", "backup_api"):
            x = r[method]
            print(f"| {label} | {method} | {m(x['wall']):.2f} ({min(x['wall']):.2f}) | "
                  f"{m(x['data']):.2f} ({min(x['data']):.2f}) | {m(x['before_data']):.2f} | "
                  f"{m(x['after_data']):.2f} | {max(x['bytes']):,} | {max(r['limit']):,} | "
                  f"{max(x['rss_kib']) / 1024:.1f} |")
    for label, r in (("bench01", res["inc_bench01"]), ("bench02", res["inc_bench02"])):
        over = max(r["snapshot"]["bytes"]) > min(r["limit"])
        print(f"{label}: snapshot incremental bytes {sorted(set(r['snapshot']['bytes']))} vs "
              f"written clusters {sorted(set(r['limit']))}: {'OVER' if over else 'OK'}; "
              f"chains equal the disk: snapshot {all(r['snapshot_chain_equals_disk'])}, "
              f"backup_api {all(r['backup_api_chain_equals_disk'])}; only the kept snapshot "
              f"left: {all(r['only_kept_snapshot_left'])}")
    print(f"snapshot incremental, bench02 ({res['big_mib'] // res['disk_mib']}x the disk, the "
          f"same writes) / bench01: data {res['big_over_small_snapshot_data']:.2f}x, whole run "
          f"{res['big_over_small_snapshot_wall']:.2f}x")


def stop(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, stop)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--state", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--ovrun", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--results", required=True)
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()
