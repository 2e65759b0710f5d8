"""Scoring a classifier: top-1 / top-5 on a labelled folder (or a class subset of it), or the
robustness benchmarks (ImageNet-C mCE, -A, -R, -Sketch); `mae eval` is its command."""

import json
from pathlib import Path

from ...data import SYNTHETIC, ImageFolder, Normalize, SyntheticShapes, default_mean_std, rendered_side
from ...data.class_subsets import check_same_classes, class_subset, read_class_mapping
from ...models.classifier import build_classifier
from ...robustness.report import markdown
from ...robustness.suite import plan_suite, run_suite
from ...storage.checkpoint_folder import MODEL_FILE
from ...storage.files import check_output_file, write_text_atomic
from ...weights.load import load_encoder
from ..compute import distributed
from ..compute.precision import resolve_precision
from ..compute.process import set_up_process
from ..config.classifier import EvalConfig
from .classifier import BEST_DIR, SYNTHETIC_VAL_SEED, eval_loader, evaluate_classifier


def classifier_file(checkpoint: str) -> str:
    """A fine-tune / linprobe run directory -> its best model; anything else as given."""
    best = Path(checkpoint) / "checkpoints" / BEST_DIR / MODEL_FILE
    return str(best) if best.is_file() else checkpoint


def evaluation_data(config: EvalConfig, img_size: tuple[int, int]):
    if config.data in (None, SYNTHETIC):
        return SyntheticShapes(config.synthetic_val_size, rendered_side(img_size), SYNTHETIC_VAL_SEED)
    source = ImageFolder(config.data, strict=config.strict_data)
    if not source.classes:
        raise ValueError(f"--data {config.data} has no class subfolders (labels come from them)")
    return source


def evaluate(config: EvalConfig) -> int:
    """Score the classifier as `config` says, print the result, write --output; the exit status."""
    if config.output:
        check_output_file(config.output, "--output")
    set_up_process(config.threads, config.matmul_backend)
    device = distributed.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    path = classifier_file(config.checkpoint)
    model, _ = build_classifier(load_encoder(path), num_classes=None, global_pool=None, drop_path_rate=0.0,
                                img_size=config.img_size, name=path)
    num_outputs = model.num_classes
    img_size = tuple(model.config["img_size"])  # (height, width)
    env = distributed.DistEnv(device=device)
    normalize = Normalize(*default_mean_std(model.config["in_chans"])).to(device)

    def score(source, subset, crop_fraction=None) -> dict:
        loader = eval_loader(source, img_size, model.config["in_chans"], config.batch_size, config.num_workers,
                             env, crop_fraction, config.strict_data)
        return evaluate_classifier(model.to(device), loader, normalize, device, precision, subset)

    if config.robustness_folders():
        return robustness(config, path, num_outputs, score)
    data = evaluation_data(config, img_size)

    # every check before any compute
    head_classes = ImageFolder(config.train_classes).classes if config.train_classes else None
    subset = None
    if config.class_map:
        mapping = read_class_mapping(config.class_map, num_outputs, head_classes)
        unknown = sorted(set(mapping) - set(data.classes))
        if unknown:
            raise ValueError(
                f"--class-map {config.class_map} names {len(unknown)} class(es) that are not class "
                f"folders of --data {config.data or SYNTHETIC}: {', '.join(unknown[:10])}"
            )
        subset = class_subset(mapping, data.classes, f"--class-map {config.class_map}")
    else:
        if head_classes is not None:
            check_same_classes(head_classes, data.classes, f"training data ({config.train_classes})",
                               f"evaluated data ({config.data})")
        if len(data.classes) != num_outputs:
            scored = f"--data {config.data}" if config.data else "the built-in synthetic dataset (no --data given)"
            raise ValueError(
                f"{path} has a head with {num_outputs} outputs but {scored} has {len(data.classes)} classes; "
                "give --data a folder of the head's classes (one subfolder each), or --class-map to score a "
                "subset of them"
            )

    metrics = score(data, subset)
    scored = f"{len(data.classes)} of {num_outputs} classes" if subset else f"{num_outputs} classes"
    print(f"{path} on {data!r} ({scored}): top-1 {metrics['top1']:.2f}%, top-5 {metrics['top5']:.2f}%, "
          f"loss {metrics['loss']:.4f}, {metrics['count']} images")
    if config.output:
        result = dict(metrics, checkpoint=path, data=config.data or SYNTHETIC, class_map=config.class_map)
        write_text_atomic(config.output, json.dumps(result, indent=2) + "\n")
    return 0


def robustness(config: EvalConfig, path: str, num_outputs: int, score) -> int:
    tasks = plan_suite(config.robustness_folders(), num_outputs)  # every check before any compute
    report = run_suite(tasks, score)
    text = markdown(report, path)
    print(text, end="")
    if config.output:
        result = {"checkpoint": path, "benchmarks": report}
        write_text_atomic(config.output, json.dumps(result, indent=2) + "\n")
        write_text_atomic(Path(config.output).with_suffix(".md"), text)
    return 0
