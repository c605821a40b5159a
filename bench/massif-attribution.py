#!/usr/bin/env python3
"""Heap of the server by the first frame of interest (sshbio, russh, ratatui, tokio) on each
allocation's stack, from a valgrind massif file or a `vgdb ... detailed_snapshot` file.

    bench/massif-attribution.py SNAPSHOT [SESSIONS]

Takes the snapshot with the largest heap; with SESSIONS it also prints bytes per session.
Used by bench/profile.sh for BENCHMARKS.md.
"""
import collections
import re
import sys

INTEREST = re.compile(r"sshbio::|russh::|russh_|ratatui|tokio::")
NODE = re.compile(r"^( *)n(\d+): (\d+) (.*)$")


def main() -> None:
    lines = open(sys.argv[1]).read().splitlines()
    sessions = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    snaps = []
    for i, line in enumerate(lines):
        if line.startswith("snapshot="):
            snaps.append({"heap": 0, "start": None})
        elif line.startswith("mem_heap_B=") and snaps:
            snaps[-1]["heap"] = int(line.split("=", 1)[1])
        elif line.startswith("heap_tree=") and line.split("=", 1)[1] in ("peak", "detailed") and snaps:
            snaps[-1]["start"] = i + 1
    snap = max((s for s in snaps if s["start"] is not None), key=lambda s: s["heap"])
    attributed: collections.Counter = collections.Counter()

    def walk(idx: int, owner):
        m = NODE.match(lines[idx])
        children, size, frame = int(m.group(2)), int(m.group(3)), re.sub(r"^0x[0-9A-F]+: ", "", m.group(4))
        idx += 1
        if owner is None and INTEREST.search(frame) and "UnknownInlinedFun" not in frame:
            owner = re.sub(r" \(library/[^)]*\)", "", frame)[:150]
        before = sum(attributed.values())
        for _ in range(children):
            idx = walk(idx, owner)
        rest = size - (sum(attributed.values()) - before)
        if rest > 0:
            attributed[owner or "(elsewhere) " + frame[:80]] += rest
        return idx

    walk(snap["start"], None)
    total = snap["heap"]
    print(f"heap {total} bytes" + (f", {total / sessions:.0f} bytes per session" if sessions else ""))
    for owner, size in attributed.most_common(25):
        per = f"{size / sessions:8.0f} B/session  " if sessions else ""
        print(f"{size:>10} B  {100 * size / total:5.1f} %  {per}{owner}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
