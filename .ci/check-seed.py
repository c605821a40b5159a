#!/usr/bin/env python3
"""Checks that content.toml holds the seed bio faithfully: every section title and every
paragraph appears word for word in the seed text. Not part of `cargo test`, so an owner who
edits their bio never sees it fail; .ci/run runs it only where the seed file exists.

Usage: .ci/check-seed.py [CONTENT [SEED]]  (defaults: content.toml, ../shared/seed/bio.txt,
or $SSHBIO_SEED)
"""
import os
import sys
import tomllib


def main() -> int:
    content_path = sys.argv[1] if len(sys.argv) > 1 else "content.toml"
    seed_path = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("SSHBIO_SEED", "../shared/seed/bio.txt")
    if not os.path.exists(seed_path):
        print(f"check-seed: no seed at {seed_path}; skipped")
        return 0
    with open(seed_path, encoding="utf-8") as f:
        seed = f.read()
    with open(content_path, "rb") as f:
        content = tomllib.load(f)
    missing = []
    checked = 0
    for section in content.get("sections", []):
        title = section["title"].strip()
        checked += 1
        if title not in seed:
            missing.append(f"section title: {title}")
        for paragraph in section.get("paragraphs", []):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            checked += 1
            if paragraph not in seed:
                missing.append(f"paragraph of {title!r}: {paragraph[:80]}...")
    # Every paragraph of the seed is in content.toml too (nothing dropped): the seed's
    # paragraphs are its lines long enough to be prose.
    shipped = " ".join(p.strip() for s in content.get("sections", []) for p in s.get("paragraphs", []))
    for line in seed.splitlines():
        line = line.strip()
        if len(line) > 120 and line not in shipped:
            missing.append(f"seed paragraph not in {content_path}: {line[:80]}...")
    if missing:
        print(f"check-seed: {content_path} does not match {seed_path}:")
        for m in missing:
            print(f"  {m}")
        return 1
    print(f"check-seed: {checked} titles and paragraphs of {content_path} are in {seed_path}, and no seed paragraph is missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
