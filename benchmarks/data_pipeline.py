"""Data pipeline throughput: JPEG decode + random resized crop + flip, images/s per worker.

Writes ImageNet-like JPEGs (default 500x375, quality 90) to a scratch folder, then measures
  (one-process stages are timed in CPU time of the process: images/s per core)
  decode only          Pillow open + full decode + RGB, one process
  folder, full decode  the training dataset (ImageFolder -> KeyedImages(RandomResizedCrop)),
                       one process (the rate of one loader worker), JPEG draft mode disabled
  folder, draft decode the same with draft mode (the default: DCT-scaled decode where the
                       crop allows, and only the crop box resampled)
  shards               the same files in tar shards written by `mae shards` (read by offset)
  shards, pre-resized  shards written with --short-side and --quality
  loader, W workers    the training DataLoader (uint8 batches) for each worker count asked
                       (wall clock: depends on the machine's load, reported beside it)
and prints how many workers a given model throughput needs on each path.

    python benchmarks/data_pipeline.py --workers 0 1 2 --feed 2600
"""

import argparse
import contextlib
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, JpegImagePlugin

from mae.benchmarking import machine, publish
from mae.data import ImageFolder, KeyedImages, RandomResizedCrop, TarShards, TrainBatches, make_loader
from mae.data.shard_writer import write_shards


def textured(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth colour field with texture, uint8 [H, W, 3]: decode cost close to a photograph's."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    freq = rng.uniform(0.005, 0.05, size=(3, 2))
    phase = rng.uniform(0, 6.3, size=3)
    channels = [np.sin(xx * fx + yy * fy + p) for (fx, fy), p in zip(freq, phase)]
    img = 127.5 * (1 + np.stack(channels, -1)) + rng.normal(0, 12, size=(height, width, 3))
    return img.clip(0, 255).astype(np.uint8)


def write_jpegs(folder: Path, count: int, width: int, height: int, quality: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(textured(rng, width, height)).save(folder / f"{i:05d}.jpg", quality=quality)


def rate(fn, count: int) -> float:
    """Images per CPU-second of this process: images/s per core, whatever else the machine
    runs (on a shared machine the wall-clock rate mostly measures the other jobs)."""
    start = time.process_time()
    for i in range(count):
        fn(i)
    return count / (time.process_time() - start)


def decode_only(source: ImageFolder):
    def run(i):
        with source.open(i % len(source)) as img:
            img.convert("RGB").load()
    return run


@contextlib.contextmanager
def without_draft():
    """JPEG draft mode off: every JPEG decoded at full size, as without the fast path."""
    draft = JpegImagePlugin.JpegImageFile.draft
    JpegImagePlugin.JpegImageFile.draft = lambda self, mode, size: None
    try:
        yield
    finally:
        JpegImagePlugin.JpegImageFile.draft = draft


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
    parser.add_argument("--short-side", type=int, default=256, help="short side of the pre-resized shards")
    parser.add_argument("--shard-quality", type=int, default=90, help="JPEG quality of the pre-resized shards")
    parser.add_argument("--feed", type=float, nargs="*", default=[],
                        help="model throughputs (images/s) to size the worker count for")
    parser.add_argument("--feed-names", nargs="*", default=[], help="a name for each --feed value")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    rows, record = [], dict(command="python benchmarks/data_pipeline.py " + shlex.join(
        sys.argv[1:] if argv is None else argv), machine=machine("cpu"), results={})
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_jpegs(folder, args.images, args.width, args.height, args.quality)
        source = ImageFolder(folder)
        write_shards(folder, folder / "shards", shard_size=64)
        write_shards(folder, folder / "resized", shard_size=64, short_side=args.short_side, quality=args.shard_quality)
        crop = RandomResizedCrop(args.crop)
        dataset = KeyedImages(source, crop, seed=0)
        paths = {
            "folder, draft decode (default)": dataset,
            "shards (files as they are)": KeyedImages(TarShards(folder / "shards"), crop, seed=0),
            f"shards pre-resized (short side {args.short_side}, q{args.shard_quality})":
                KeyedImages(TarShards(folder / "resized"), crop, seed=0),
        }
        one_worker = lambda data: rate(lambda i: data[(0, i % len(data))], args.measure)  # noqa: E731
        dataset[0]
        per_worker, loads = {}, {}

        def record_rate(name, value):  # the machine is shared: each figure with its load average
            per_worker[name], loads[name] = value, os.getloadavg()[0]
            rows.append(f"| {name} | {value:,.0f} | {loads[name]:.2f} |")
            print(rows[-1], flush=True)

        record_rate("decode only", rate(decode_only(source), args.measure))
        with without_draft():
            record_rate("folder, full decode (no draft)", one_worker(dataset))
        for name, data in paths.items():
            record_rate(name, one_worker(data))
        for workers in args.workers:
            for pin in (False, True) if torch.cuda.is_available() else (False,):
                value = loader_rate(dataset, args.measure, args.batch, workers, pin)
                name = f"loader, {workers} worker(s){', pinned' if pin else ''}"
                record_rate(name, value)
    record["results"], record["load_average_1min"] = per_worker, loads
    names = args.feed_names + [f"{feed:,.0f} images/s" for feed in args.feed[len(args.feed_names):]]
    paths = [name for name in per_worker if name.startswith(("folder", "shards"))]
    needs = ["| model throughput | " + " | ".join(paths) + " |", "|---|" + "---:|" * len(paths)] + [
        f"| {name} | " + " | ".join(f"{math.ceil(feed / per_worker[p])}" for p in paths) + " |"
        for name, feed in zip(names, args.feed)] if args.feed else []
    table = "\n".join([
        f"**Data pipeline: {args.width}x{args.height} JPEG q{args.quality} -> {args.crop}px random resized "
        f"crop + flip, uint8; {record['machine']['cpu']}**",
        "",
        "| stage | images/s (per core: CPU time; loaders: wall clock) | 1-min load |",
        "|---|---:|---:|",
        *rows,
        "",
        "Loader workers (cores) each model throughput needs, by decode path:" if needs else "",
        "",
        *needs,
    ]) + "\n"
    publish(table, record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
