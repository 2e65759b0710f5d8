"""The demo's training speed with and without another CPU-bound job on the same cores.

Runs `mae pretrain --config configs/demo.yaml`, cut to a few steps, once per setting:
torch's default threads with OpenMP's default wait policy (spin, then sleep), the same
with OMP_WAIT_POLICY=PASSIVE (mae's default), and one thread; each alone and beside a
competitor process (one busy Python loop per core it is given). Reports the median
images/s of the logged windows after the first, with the 1-minute load average.

    python benchmarks/threads.py --images 192 --competitors 0 1
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mae.benchmarking import machine, publish

# name -> (extra environment, extra flags); libgomp takes an empty policy for its default (with a warning)
SETTINGS = {
    "default threads, OpenMP's default wait": ({"OMP_WAIT_POLICY": ""}, []),
    "default threads, passive wait (default)": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "1 thread, passive wait": ({"OMP_WAIT_POLICY": "PASSIVE"}, ["--threads", "1"]),
}
BUSY_LOOP = "while True: pass"


def demo_rate(run_dir: Path, images: int, env: dict, flags: list[str]) -> float:
    command = [sys.executable, "-m", "mae.cli", "pretrain", "--config", "configs/demo.yaml",
               "--output-dir", str(run_dir), "--epochs", "1", "--warmup-epochs", "0",
               "--synthetic-size", str(images), "--log-every", "1", "--knn-every-epochs", "0",
               "--preview-every-epochs", "0", *flags]
    subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in rows if "images_per_s" in r]
    return statistics.median(speeds[1:] or speeds)  # the first window holds start-up


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=192, help="synthetic images: one epoch of this many")
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1],
                        help="numbers of busy processes to run beside the demo, one pass each")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)

    rows, results = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for competitors in args.competitors:
            busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(competitors)]
            try:
                for i, (name, (env, flags)) in enumerate(SETTINGS.items()):
                    rate = demo_rate(Path(scratch) / f"{competitors}-{i}", args.images, env, flags)
                    load = round(os.getloadavg()[0], 2)
                    results.append(dict(setting=name, competitors=len(busy), images_per_s=rate, load_average_1min=load))
                    rows.append(f"| {name} | {len(busy)} | {rate:,.1f} | {load} |")
                    print(rows[-1], flush=True)
            finally:
                for process in busy:
                    process.kill()
                    process.wait()

    table = "\n".join([
        f"**Demo pretraining (configs/demo.yaml), {args.images} images, {os.cpu_count()} cores**", "",
        "| setting | competing busy processes | images/s | 1-min load |", "|---|---:|---:|---:|", *rows,
    ]) + "\n"
    command = "python benchmarks/threads.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    record = dict(command=command, machine=machine("cpu"), results=results)
    publish(table, record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
