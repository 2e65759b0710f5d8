"""The batched device-side crop (mae.data.device_crops) against the Pillow crop, on this CPU.

Both start from decoded pixels (decode is not counted: on a GPU it is nvJPEG's) and end with
normalised float32 224 x 224 crops, flipped at random, of the same boxes:
  Pillow crop            RandomResizedCrop's resample of each image (crop box -> bicubic
                         resize -> flip -> uint8), then Normalize on the batch
  device crop, batch     DeviceCrops on a uint8 [N, 3, H, W] batch (pre-resized shards)
  device crop, list      DeviceCrops on a list of images of different sizes (padded)
Images/s per core: CPU time of this process, one torch thread.

    python benchmarks/device_crops.py --out benchmarks/results/device_crops_cpu.json
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np
import torch
from PIL import Image

from data_pipeline import textured  # run as a script: benchmarks/ is on the path
from mae.benchmarking import machine, publish
from mae.data import IMAGENET_MEAN, IMAGENET_STD, Normalize, RandomResizedCrop
from mae.data.device_crops import DeviceCrops, draw_crops
from mae.data.transforms import _to_tensor


def images(count: int, width: int, height: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [textured(rng, width, height) for _ in range(count)]


def per_core(fn, images_per_call: int, calls: int) -> float:
    fn()  # warm-up
    start = time.process_time()
    for _ in range(calls):
        fn()
    return images_per_call * calls / (time.process_time() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["341x256", "500x375"], help="WIDTHxHEIGHT of the images")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=3, help="batches timed per figure")
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = dict(command="python benchmarks/device_crops.py " + shlex.join(sys.argv[1:] if argv is None else argv),
                  machine=machine("cpu"), results={})
    crop = RandomResizedCrop(args.crop)
    normalize, device_crops = Normalize(), DeviceCrops(crop, IMAGENET_MEAN, IMAGENET_STD)
    keys = [(0, i) for i in range(args.batch)]
    rows = []
    for size in args.sizes:
        width, height = map(int, size.split("x"))
        pixels = images(args.batch, width, height, seed=0)
        pils = [Image.fromarray(p) for p in pixels]
        boxes, flips = draw_crops(crop, [(width, height)] * args.batch, keys, seed=0)
        batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()  # [N, 3, H, W] uint8
        # differently sized: each image cut to between 80% and 100% of each side
        cut = [p[: height - (i % 5) * height // 25, : width - (i % 7) * width // 35] for i, p in enumerate(pixels)]
        ragged = [torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1))) for p in cut]
        ragged_boxes, ragged_flips = draw_crops(crop, [(p.shape[1], p.shape[0]) for p in cut], keys, seed=0)

        def pillow():
            out = []
            for img, box, flip in zip(pils, boxes.tolist(), flips.tolist()):
                one = img.resize((args.crop, args.crop), Image.BICUBIC, box=tuple(box), reducing_gap=3.0)
                out.append(_to_tensor(one.transpose(Image.FLIP_LEFT_RIGHT) if flip else one, 3))
            return normalize(torch.stack(out))

        stages = {
            "Pillow crop (+ Normalize)": pillow,
            "device crop, uint8 batch": lambda: device_crops(batch, boxes, flips),
            "device crop, list of sizes": lambda: device_crops(ragged, ragged_boxes, ragged_flips),
        }
        for name, fn in stages.items():
            value = per_core(fn, args.batch, args.calls)
            load = os.getloadavg()[0]
            record["results"][f"{size}: {name}"] = {"images_per_s": round(value, 1), "load_average_1min": load}
            rows.append(f"| {size} | {name} | {value:,.0f} | {load:.2f} |")
            print(rows[-1], flush=True)
    table = "\n".join([
        f"**Random resized crop {args.crop}px + flip + normalise from decoded uint8 pixels, batch "
        f"{args.batch}, one thread; {record['machine']['cpu']}**", "",
        "| images | path | images/s per core (CPU time) | 1-min load |", "|---|---|---:|---:|", *rows]) + "\n"
    publish(table, record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
