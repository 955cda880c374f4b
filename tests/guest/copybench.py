#!/usr/bin/env python3
"""Host memory-copy bandwidth, the probe of seed 001 §IV's perturbation
test: one process copies a buffer much larger than the caches into another
for a fixed time and prints the MB/s it achieved. Run alone and while an
emulated device works, the two figures show how much the emulation slows
the host's own work."""
import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to copy")
    ap.add_argument("--mib", type=int, default=32, help="buffer size in MiB")
    args = ap.parse_args()
    src = bytearray(args.mib << 20)
    dst = bytearray(args.mib << 20)
    copied = 0
    start = time.monotonic()
    deadline = start + args.seconds
    while time.monotonic() < deadline:
        dst[:] = src
        copied += len(src)
    elapsed = time.monotonic() - start
    print(f"{copied / elapsed / 1e6:.1f}")


if __name__ == "__main__":
    main()
