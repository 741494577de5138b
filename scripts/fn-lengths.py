#!/usr/bin/env python3
"""Function-length distribution of Rust sources (python3, standard library only).

A function's length is its lines from the `fn` keyword to its closing brace, both included.
Declarations without a body (trait methods, `extern` items) are not functions here. Items
inside a `#[cfg(test)]` module (`#[cfg(test)] mod tests { ... }`) are left out, as are the
files of a `#[cfg(test)] mod name;` declaration.

Usage: scripts/fn-lengths.py [DIR_OR_FILE ...] [--over N ...]
       (default: src/ of the repository, thresholds 40 and 80)

Prints count, median, p90, p99 and max, then every function over each threshold, longest
first, as `file:line  length  name`.
"""

import argparse
import os
import re
import sys

FN_NAME = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")
CFG_TEST_MOD = re.compile(
    r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*([{;])"
)


def blank_out(text):
    """The text with comments and the insides of string and char literals replaced by
    spaces (newlines kept), so that braces and keywords in them are not seen."""
    out = list(text)
    i, n = 0, len(text)

    def blank(start, end):
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(?:br|rb|r)(#*)"|b"', text[i:])
            if not m:
                i += 1
                continue
            if m.group(0).startswith("b\""):
                i = skip_string(text, i + 1, blank)
            else:
                hashes = m.group(1)
                start = i + len(m.group(0))
                end = text.find('"' + hashes, start)
                end = n if end < 0 else end + 1 + len(hashes)
                blank(start, end - 1 - len(hashes))
                i = end
        elif c == '"':
            i = skip_string(text, i, blank)
        elif c == "'":
            i = skip_char(text, i, blank)
        else:
            i += 1
    return "".join(out)


def skip_string(text, i, blank):
    """Past the string literal whose opening quote is at `i`."""
    j = i + 1
    while j < len(text) and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    blank(i + 1, j)
    return j + 1


def skip_char(text, i, blank):
    """Past a char literal at `i`, or past the quote of a lifetime."""
    if text[i + 1 : i + 2] == "\\":
        j = text.find("'", i + 2)
        j = len(text) if j < 0 else j
        blank(i + 1, j)
        return j + 1
    if text[i + 2 : i + 3] == "'":
        blank(i + 1, i + 2)
        return i + 3
    return i + 1


def matching_brace(clean, open_at):
    """The index of the brace closing the one at `open_at`."""
    depth = 0
    for k in range(open_at, len(clean)):
        if clean[k] == "{":
            depth += 1
        elif clean[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(clean) - 1


def body_start(clean, after_name):
    """The index of the `{` opening a function's body, or None for a declaration (`;`)."""
    depth = 0
    for k in range(after_name, len(clean)):
        c = clean[k]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c == ";":
            return None
        elif depth == 0 and c == "{":
            return k
    return None


def test_ranges(clean, path):
    """Character ranges of inline test modules, and the files of out-of-line ones."""
    ranges, files = [], []
    for m in CFG_TEST_MOD.finditer(clean):
        if m.group(2) == "{":
            ranges.append((m.start(), matching_brace(clean, m.end() - 1)))
        else:
            base = os.path.dirname(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem not in ("mod", "lib", "main"):
                base = os.path.join(base, stem)
            name = m.group(1)
            files += [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
    return ranges, files


def functions(path):
    """(line, length, name) of each function of a file outside test modules, and the
    test-only files it declares."""
    with open(path, encoding="utf-8") as f:
        clean = blank_out(f.read())
    skip, test_files = test_ranges(clean, path)
    found = []
    for m in FN_NAME.finditer(clean):
        if any(a <= m.start() <= b for a, b in skip):
            continue
        open_at = body_start(clean, m.end())
        if open_at is None:
            continue
        close_at = matching_brace(clean, open_at)
        first = clean.count("\n", 0, m.start()) + 1
        last = clean.count("\n", 0, close_at) + 1
        found.append((first, last - first + 1, m.group(1)))
    return found, test_files


def rust_files(roots):
    for root in roots:
        if os.path.isfile(root):
            yield root
            continue
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                if name.endswith(".rs"):
                    yield os.path.join(folder, name)


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return 0
    rank = max(1, -(-p * len(sorted_values) // 100))
    return sorted_values[int(rank) - 1]


def median(sorted_values):
    n = len(sorted_values)
    if not n:
        return 0
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=[os.path.join(repo, "src")])
    parser.add_argument("--over", type=int, action="append", help="list functions longer than N lines (default: 40 and 80)")
    args = parser.parse_args()
    thresholds = args.over or [40, 80]

    rows, test_files = [], set()
    files = list(rust_files(args.paths))
    for path in files:
        found, tests = functions(path)
        test_files.update(os.path.normpath(t) for t in tests)
        rows += [(path, line, length, name) for line, length, name in found]
    rows = [r for r in rows if os.path.normpath(r[0]) not in test_files]

    lengths = sorted(r[2] for r in rows)
    print(f"functions: {len(lengths)}")
    print(f"median:    {median(lengths):g}")
    print(f"p90:       {percentile(lengths, 90)}")
    print(f"p99:       {percentile(lengths, 99)}")
    print(f"max:       {lengths[-1] if lengths else 0}")
    cwd = os.getcwd()
    for limit in sorted(thresholds):
        over = sorted((r for r in rows if r[2] > limit), key=lambda r: (-r[2], r[0], r[1]))
        print(f"\nover {limit} lines: {len(over)}")
        for path, line, length, name in over:
            print(f"  {os.path.relpath(path, cwd)}:{line}  {length}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
