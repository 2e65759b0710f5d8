"""Data pipeline throughput: JPEG decode + random resized crop + flip, images/s per worker.

Writes ImageNet-like JPEGs (default 500x375, quality 90) to a scratch folder, then measures
  decode only          Pillow open + full decode + RGB, one process
  decode + augment     the training dataset (ImageFolder -> KeyedImages(RandomResizedCrop)),
                       one process: this is the rate of one loader worker
  loader, W workers    the training DataLoader (uint8 batches) for each worker count asked
and prints how many workers a given model throughput needs.

    python benchmarks/data_pipeline.py --workers 0 1 2 --feed 2600
"""

import argparse
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mae.benchmarking import machine, write_results
from mae.data import ImageFolder, KeyedImages, RandomResizedCrop, TrainBatches, make_loader


def write_jpegs(folder: Path, count: int, width: int, height: int, quality: int, seed: int = 0) -> None:
    """Smooth colour fields with texture: decode cost close to that of photographs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        freq = rng.uniform(0.005, 0.05, size=(3, 2))
        phase = rng.uniform(0, 6.3, size=3)
        channels = [np.sin(xx * fx + yy * fy + p) for (fx, fy), p in zip(freq, phase)]
        img = 127.5 * (1 + np.stack(channels, -1)) + rng.normal(0, 12, size=(height, width, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=quality)


def rate(fn, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - start)


def decode_only(source: ImageFolder):
    def run(i):
        with source.open(i % len(source)) as img:
            img.convert("RGB").load()
    return run


def loader_rate(dataset, num_images: int, batch: int, workers: int, pin: bool) -> float:
    batches = TrainBatches(len(dataset), batch, epochs=math.ceil(num_images / len(dataset)) + 1)
    loader = make_loader(dataset, batches, num_workers=workers, pin_memory=pin)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    seen, start = 0, time.perf_counter()
    while seen < num_images:
        imgs, _ = next(it)
        seen += imgs.shape[0]
    return seen / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=128, help="JPEG files written")
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--measure", type=int, default=512, help="images per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--feed", type=float, nargs="*", default=[],
                        help="model throughputs (images/s) to size the worker count for")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    rows, record = [], dict(command="python benchmarks/data_pipeline.py " + shlex.join(
        sys.argv[1:] if argv is None else argv), machine=machine("cpu"), results={})
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_jpegs(folder, args.images, args.width, args.height, args.quality)
        source = ImageFolder(folder)
        dataset = KeyedImages(source, RandomResizedCrop(args.crop), seed=0)
        dataset[0]
        per_worker = {
            "decode only": rate(decode_only(source), args.measure),
            "decode + augment (one worker)": rate(lambda i: dataset[(0, i % len(dataset))], args.measure),
        }
        for name, value in per_worker.items():
            rows.append(f"| {name} | {value:,.0f} |")
        for workers in args.workers:
            for pin in (False, True) if torch.cuda.is_available() else (False,):
                value = loader_rate(dataset, args.measure, args.batch, workers, pin)
                name = f"loader, {workers} worker(s){', pinned' if pin else ''}"
                per_worker[name] = value
                rows.append(f"| {name} | {value:,.0f} |")
                print(rows[-1], flush=True)
    record["results"] = per_worker
    worker_rate = per_worker["decode + augment (one worker)"]
    needs = [f"- {feed:,.0f} images/s needs about {math.ceil(feed / worker_rate)} worker(s) "
             f"(cores) at {worker_rate:,.0f} images/s each" for feed in args.feed]
    table = "\n".join([
        f"**Data pipeline: {args.width}x{args.height} JPEG q{args.quality} -> {args.crop}px random resized "
        f"crop + flip, uint8; {record['machine']['cpu']}**",
        "",
        "| stage | images/s |",
        "|---|---:|",
        *rows,
        "",
        *needs,
    ]) + "\n"
    print(table, end="")
    if args.out:
        for path in write_results(args.out, record, table):
            print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
