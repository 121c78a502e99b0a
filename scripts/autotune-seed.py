#!/usr/bin/env python3
"""Refresh tests/data-autotune from the wgpu tests' filled autotune caches.

Run the README's test command on lavapipe with empty caches first
(rm -rf crates/maml-backends/target/autotune crates/maml-cli/target/autotune, and
tests/data-autotune's files moved away), then this script: it merges the caches of the
two test crates, keeps each entry's key and fastest index, drops the timings, and
writes one file per tuned operation (see tests/common/autotune.rs).
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE = "device-4-0-wgpu_wgsl_"
CACHES = [
    os.path.join(ROOT, crate, "target/autotune/0.10.0", DEVICE)
    for crate in ("crates/maml-backends", "crates/maml-cli")
]
OUT = os.path.join(ROOT, "tests/data-autotune", DEVICE)


def main():
    entries = {}
    for cache in CACHES:
        for path in sorted(glob.glob(os.path.join(cache, "*.json.log"))):
            name = os.path.basename(path)
            with open(path) as f:
                for line in f:
                    entry = json.loads(line)
                    entry["value"]["results"] = []
                    key = json.dumps(entry["key"], sort_keys=True)
                    entries.setdefault(name, {})[key] = entry
    if not entries:
        sys.exit(f"no autotune cache found in {CACHES}")
    os.makedirs(OUT, exist_ok=True)
    for name, by_key in sorted(entries.items()):
        with open(os.path.join(OUT, name), "w") as f:
            for key in sorted(by_key):
                f.write(json.dumps(by_key[key], separators=(",", ":")) + "\n")
        print(f"{name}: {len(by_key)} entries")


if __name__ == "__main__":
    main()
