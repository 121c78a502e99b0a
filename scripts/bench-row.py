"""Formats one `maml bench --json` report (stdin) as a row of the scaling table."""
import json
import sys

r = json.load(sys.stdin)
size = r["width"] if "width" in r else r["d_in"]
print(
    f"| {size} | {r['tasks']} | {r['inner_steps']} | {r['order']} "
    f"| {r['ms_per_meta_step']:.3f} | {r['meta_steps_per_s']:,.0f} "
    f"| {r['peak_rss_bytes'] / 1048576:.1f} | {r['meta_step_heap_bytes'] / 1048576:.2f} |"
)
