#!/usr/bin/env python3
"""Times commands side by side, in the same run, and prints a Markdown table with ratios.

    compare.py RUNS 'label=command' 'label=command' ...

Runs interleave (A, B, A, B, ...) so that machine noise hits both alike. The first command is
the one measured; every other row gets its ratio against it (peer time / our time). Peak memory
is each run's maximum resident set size (getrusage of the child).
"""
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time


def run_once(command):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(command, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed with exit {code}: {command}")
    del before
    return elapsed, usage.ru_maxrss / 1024


def main():
    runs = int(sys.argv[1])
    pairs = [arg.split("=", 1) for arg in sys.argv[2:]]
    times = {label: [] for label, _ in pairs}
    peaks = {label: 0.0 for label, _ in pairs}
    for label, command in pairs:  # warm caches once, unmeasured
        run_once(command)
    for _ in range(runs):
        for label, command in pairs:
            elapsed, peak = run_once(command)
            times[label].append(elapsed)
            peaks[label] = max(peaks[label], peak)
    ours = statistics.median(times[pairs[0][0]])
    print(f"| command | median of {runs} (s) | min (s) | peak RSS (MiB) | ratio to `{pairs[0][0]}` |")
    print("|---|---|---|---|---|")
    for label, _ in pairs:
        median = statistics.median(times[label])
        ratio = median / ours
        print(f"| `{label}` | {median:.3f} | {min(times[label]):.3f} | {peaks[label]:.0f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
