#!/usr/bin/env python3
"""Prints P-1's figures from criterion's output: MB/s of each benchmark and its ratio to sha256d."""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion/p1_block_frame"
names = ["sha256d", "frame_decode", "frame_decode_codec", "frame_encode_raw", "frame_encode_block", "block_parse"]
est = {}
for n in names:
    path = os.path.join(root, n, "new", "estimates.json")
    if os.path.exists(path):
        est[n] = json.load(open(path))["median"]["point_estimate"]  # nanoseconds per iteration
bench = json.load(open(os.path.join(root, "sha256d", "new", "benchmark.json")))
size = bench["throughput"]["Bytes"]
base = est["sha256d"]
for n in names:
    if n in est:
        mbps = size / est[n] * 1e3
        print(f"{n:20s} {est[n]/1e3:9.1f} us  {mbps:8.0f} MB/s  ratio to sha256d {base/est[n]:.3f}")
