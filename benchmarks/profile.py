"""Profile a benchmark server under load with py-spy (sampling; the server is not modified).

    .venv/bin/pip install py-spy
    python -m benchmarks.profile --server ours --mode json --clients 16 --seconds 10

Starts the server pinned to one core, drives it with the load generator on the other,
records ``py-spy record --format raw`` (collapsed stacks) into ``benchmarks/results/``
and prints the functions with the most samples, inclusive and exclusive, and the share
of samples under each top-level layer (Hypercorn, trio's scheduler, our package...).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .run import LOADGEN, LOADGEN_CORE, PY, RESULTS, Server, pinned


def summarize(path: Path, top: int = 40, focus: str = "") -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if focus and not any(focus in f for f in frames):
            continue
        total += count
        seen = set()
        for frame in frames:
            key = _short(frame)
            if key not in seen:
                inclusive[key] += count
                seen.add(key)
        if frames:
            exclusive[_short(frames[-1])] += count
    out = [f"{total} samples{' under ' + focus if focus else ''}", "", "inclusive:"]
    for key, count in inclusive.most_common(top):
        out.append(f"  {100 * count / total:5.1f}%  {key}")
    out += ["", "exclusive (self):"]
    for key, count in exclusive.most_common(top):
        out.append(f"  {100 * count / total:5.1f}%  {key}")
    return "\n".join(out)


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file, _, _line = where.rpartition(":")
    parts = Path(file).parts
    for anchor in ("site-packages", "trio_mcp_http", "benchmarks"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + (1 if anchor == "site-packages" else 0) :]
            break
    return f"{name} ({'/'.join(parts[-3:])})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server", default="ours", choices=["ours", "sdk-uvicorn", "sdk-hypercorn", "canned"]
    )
    parser.add_argument("--mode", default="json", choices=["sse", "json", "stateless", "modern"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=997, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    server_mode = "sse" if args.mode == "modern" else args.mode
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{args.server}-{args.mode}-c{args.clients}.txt"
    srv = Server(args.server, server_mode, tag="-profile")
    try:
        load = subprocess.Popen(
            pinned(
                [
                    PY,
                    str(LOADGEN),
                    "throughput",
                    "--url",
                    srv.url,
                    "--pid",
                    str(srv.pid),
                    "--mode",
                    args.mode,
                    "--clients",
                    str(args.clients),
                    "--warmup",
                    "1",
                    "--duration",
                    str(args.seconds + 2),
                    "--reps",
                    "1",
                ],
                LOADGEN_CORE,
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)
        subprocess.run(
            pinned(
                [
                    spy,
                    "record",
                    "--pid",
                    str(srv.pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                ],
                LOADGEN_CORE,
            ),
            check=True,
            capture_output=True,
        )
        stdout, _ = load.communicate(timeout=args.seconds + 60)
        print(stdout.strip())
    finally:
        srv.stop()
    print(f"collapsed stacks: {out}")
    print(summarize(out, args.top))


if __name__ == "__main__":
    main()
