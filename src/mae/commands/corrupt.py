"""`mae corrupt`: a corrupted copy of a labelled image folder, in the ImageNet-C layout.

    mae corrupt --data ~/birds/test --out ~/birds-c              # the 15 corruptions x 5 severities
    mae corrupt --data ~/birds/test --out ~/birds-c --corruptions fog,contrast --severities 3 5
    mae eval --checkpoint runs/birds-ft --imagenet-c ~/birds-c --output birds-c.json

Writes OUT/<corruption>/<severity>/<class>/<image>.png, each image resized and centre-cropped
to --size first (as ImageNet-C: 224 of 256). Needs the `imagecorruptions` package
(pip install 'mae[corruptions]'). Rerunning the same command completes an interrupted copy.
"""

import argparse

HELP = "write a corrupted copy (ImageNet-C corruptions, severities 1-5) of a labelled image folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    parser.add_argument("--data", required=True, metavar="DIR", help="labelled images: one subfolder per class")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the copy goes")
    parser.add_argument("--corruptions", default="benchmark",
                        help="'benchmark': the 15 of ImageNet-C (default); 'all': also its 4 held-out ones "
                        "(speckle_noise, gaussian_blur, spatter, saturate); or comma-separated names")
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5], metavar="S",
                        help="severities among 1-5 (default: all five)")
    parser.add_argument("--size", type=int, default=224, help="side of the square images written")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions' randomness")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (0: in this process)")


def run(args: argparse.Namespace) -> int:
    from ..data import ImageFolder  # loads torch: only when the command runs
    from ..robustness.corrupt import resolve_names, write_corrupted

    if args.workers < 0:
        raise ValueError(f"--workers must not be negative, got {args.workers}")
    names = resolve_names(args.corruptions)
    source = ImageFolder(args.data)
    written = write_corrupted(source, args.out, names, tuple(args.severities), args.size, args.seed,
                              args.workers, progress=True)
    print(f"wrote {written} files to {args.out}: {len(names)} corruption(s) x {len(args.severities)} "
          f"severities of {len(source)} images ({', '.join(names)})")
    return 0
