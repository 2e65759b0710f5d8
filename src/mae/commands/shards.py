"""`mae shards SRC OUT`: an image folder as webdataset tar shards with a manifest."""

import argparse
import os
import sys

from ..data.shard_writer import MANIFEST, write_shards

HELP = "write an image folder as tar shards (optionally shrunk and re-encoded), with a manifest"

EPILOG = """\
examples:
  mae shards ~/imagenet/train /data/imagenet-shards --processes 16
  mae shards ~/imagenet/train /data/imagenet-256 --short-side 256 --quality 90 --processes 16
  mae pretrain --data /data/imagenet-256 --config configs/pretrain_vit_base_800ep.yaml
Run the same command again after a stop: complete shards are kept, the rest written.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("src", help="image folder (one subfolder per class, or flat; searched recursively)")
    parser.add_argument("out", help=f"folder for the shards and {MANIFEST}")
    parser.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    parser.add_argument("--prefix", default="train", help="shard file names: PREFIX-000000.tar, ...")
    parser.add_argument("--short-side", type=int, default=None,
                        help="shrink each image so its shorter side is this many pixels (never enlarged) "
                        "and store it as JPEG; default: copy the files as they are")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality with --short-side (default 90)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per CPU core)")


def run(args: argparse.Namespace) -> int:
    def progress(done: int, total: int) -> None:
        print(f"\rmae shards: {done}/{total} shards", end="", file=sys.stderr, flush=True)

    manifest = write_shards(args.src, args.out, args.shard_size, args.prefix, args.short_side, args.quality,
                            args.processes, progress)
    print(file=sys.stderr)
    print(f"done: {manifest['count']} images in {len(manifest['shards'])} shard(s), "
          f"{len(manifest['classes'])} classes, manifest {args.out}/{MANIFEST} (digest {manifest['digest'][:16]})")
    return 0
