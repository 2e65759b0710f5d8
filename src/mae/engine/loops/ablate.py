"""`mae ablate`: the paper's Table 1 at any scale. Every run is a base pretraining setting
with one setting changed (mask ratio, decoder depth or width, where the mask tokens go,
target, augmentation, mask type), all with
the same budget (the base's epochs); each encoder is then probed by k-NN on held-out images
and, with `finetune_epochs`, by a short plain fine-tuning (the paper's main measure).

    from mae.engine.loops.ablate import AblateConfig, ablate
    table = ablate(AblateConfig(base="configs/ablate_demo.yaml", mask_ratios=(0.5, 0.75)))

Each run is an ordinary `mae pretrain` run directory under OUT/<name>, resumed with
`--resume auto`; a finished run (pretrained and probed) holds probe.json and is not run
again. After every run OUT/ablation.json, OUT/ablation.md and OUT/ablation.png (k-NN
accuracy against the mask ratio, as the paper's Figure 5) are rewritten. Last, the same
probes of the base architecture with random weights (OUT/random-init) say what pretraining
added at all.
"""

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import Normalize, build_source, default_mean_std, rendered_side
from ...models import create_model
from ...storage.files import write_text_atomic
from ...util.text import format_duration, format_size, plural
from ...weights.load import load_model
from ..compute.process import set_up_process
from ..config.ablate import AXES, SETTING_VALUES, AblateConfig
from ..config.base import config_to_dict, find_config, flag, load_config
from ..config.classifier import FinetuneConfig
from ..config.pretrain import PretrainConfig
from ..eval.knn import knn_monitor
from ..run.metrics import read_metrics
from .finetune import finetune
from .pretrain import make_knn_loaders, pretrain

BASE = "base"
REFERENCE = "random-init"  # the base architecture, not pretrained


@dataclass
class Run:
    name: str  # its directory under OUT
    config: PretrainConfig
    finetune: FinetuneConfig | None = None  # the fine-tuning probe, if asked for


def finetune_probe(config: AblateConfig, run: PretrainConfig) -> FinetuneConfig | None:
    """The plain fine-tuning of a run's encoder, on its data's training and held-out images."""
    if not config.finetune_epochs:
        return None
    if run.data in (None, "synthetic"):
        data = dict(data="synthetic", synthetic_size=run.synthetic_size, synthetic_val_size=run.knn_images)
    else:
        train, val = Path(run.data), Path(run.knn_val_data or "")
        if not (train.name == "train" and val.name == "val" and train.parent.resolve() == val.parent.resolve()):
            raise ValueError(f"--finetune-epochs needs `mae finetune`'s layout: --data DIR/train and "
                             f"--knn-val-data DIR/val, not {run.data} and {run.knn_val_data}")
        data = dict(data=str(train.parent))
    return FinetuneConfig(checkpoint=run.output_dir, **data, img_size=run.img_size, epochs=config.finetune_epochs,
                          batch_size=run.batch_size, mixup=0.0, cutmix=0.0, randaug_ops=0, reprob=0.0,
                          smoothing=0.0, drop_path=0.0, seed=run.seed, threads=run.threads,
                          num_workers=run.num_workers, output_dir=str(Path(run.output_dir) / "finetune"),
                          resume="auto", keep_last=1)


def plan(config: AblateConfig) -> tuple[list[Run], list[tuple[str, object, str]]]:
    """Every run (the base first) and the table's rows (axis, value, run name); all settings
    are checked here, before anything runs."""
    if config.base is None:
        raise ValueError("--base is needed: a `mae pretrain` YAML file with the base setting "
                         "(e.g. configs/ablate_demo.yaml)")
    base = load_config(PretrainConfig, find_config(config.base))
    out = Path(config.output_dir)
    overrides = dict(output_dir=str(out / BASE), resume="auto", knn_images=config.knn_images, knn_every_epochs=0)
    for name in ("data", "knn_val_data", "threads"):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    base = dataclasses.replace(base, **overrides)
    runs, rows = {BASE: Run(BASE, base, finetune_probe(config, base))}, []
    for axis, (setting, _) in AXES.items():
        for value in getattr(config, axis):
            setting_value = SETTING_VALUES.get(axis, {}).get(value, value)
            name = BASE if setting_value == getattr(base, setting) else f"{setting}={setting_value}"
            if name not in runs:
                try:
                    changed = dataclasses.replace(base, **{setting: setting_value, "output_dir": str(out / name)})
                    create_model(changed.model, **changed.model_kwargs())  # the architecture is valid
                except ValueError as err:
                    raise ValueError(f"{flag(axis)} {value}: {err}") from None
                runs[name] = Run(name, changed, finetune_probe(config, changed))
            rows.append((axis, value, name))
    if not rows:
        raise ValueError("nothing to compare: give at least one of " + ", ".join(flag(a) for a in AXES))
    return list(runs.values()), rows


def _check_run_directory(run: Run) -> None:
    """A run directory left by another grid is not silently mixed into this table. The run saved
    its settings as chosen at its start: only those this grid gives are compared."""
    saved = Path(run.config.output_dir) / "config.yaml"
    if not saved.is_file():
        return
    old = load_config(PretrainConfig, saved)
    if any(getattr(run.config, f.name) not in (None, getattr(old, f.name)) for f in dataclasses.fields(old)):
        raise ValueError(f"{saved.parent} holds a run of other settings than this grid's {run.name!r}; "
                         "remove it or choose another --output-dir")


def probe(config: PretrainConfig, model: torch.nn.Module) -> dict:
    """k-NN top-1 / top-5 of the model's cls features, on the run's data."""
    source = build_source(config.data, config.strict_data, config.synthetic_size, rendered_side(config.img_size),
                          config.seed)
    normalize = Normalize(*default_mean_std(config.in_chans))
    with torch.no_grad():
        return knn_monitor(model, *make_knn_loaders(config, source, False), normalize, num_classes=source.num_classes)


def _run_and_probe(run: Run) -> dict:
    result_file = Path(run.config.output_dir) / "probe.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    start = time.perf_counter()
    result = pretrain(run.config)
    accuracy = probe(run.config, load_model(run.config.output_dir))
    if run.finetune is not None:
        accuracy["finetune_top1"] = finetune(run.finetune).top1  # the last epoch's
    epochs = [r["epoch_loss"] for r in read_metrics(result.run_dir) if "epoch_loss" in r]
    record = dict(accuracy, final_epoch_loss=epochs[-1] if epochs else None, steps=result.step,
                  seconds=round(time.perf_counter() - start, 1))
    write_text_atomic(result_file, json.dumps(record, indent=1) + "\n")
    return record


def _reference(base: Run, out: Path) -> dict:
    """The probes of the base architecture with random weights (the base run must exist)."""
    result_file = out / REFERENCE / "probe.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    torch.manual_seed(base.config.seed)
    accuracy = probe(base.config, create_model(base.config.model, **base.config.model_kwargs()))
    if base.finetune is not None:
        ft = dataclasses.replace(base.finetune, random_init=True, output_dir=str(out / REFERENCE / "finetune"))
        accuracy["finetune_top1"] = finetune(ft).top1
    result_file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(result_file, json.dumps(accuracy, indent=1) + "\n")
    return accuracy


def _write(table: dict, out: Path) -> None:
    write_text_atomic(out / "ablation.json", json.dumps(table, indent=1) + "\n")
    write_text_atomic(out / "ablation.md", markdown(table))
    plot(table, out / "ablation.png")


def ablate(config: AblateConfig) -> dict:
    """Run (or resume) the grid; returns what OUT/ablation.json holds."""
    runs, rows = plan(config)
    base = runs[0].config
    for run in runs:
        _check_run_directory(run)
    make_knn_loaders(base, build_source(base.data, base.strict_data, base.synthetic_size, rendered_side(base.img_size),
                                    base.seed), False)  # labelled data and a held-out set, checked first
    set_up_process(config.threads)  # the k-NN probes' process; each run sets its own backend
    out = Path(config.output_dir)
    results: dict[str, dict] = {}
    trained: list[float] = []  # wall seconds of each run trained by this call (not read back)
    for run in runs:
        print(f"mae ablate: run {len(results) + 1}/{len(runs)}: {run.name}", flush=True)
        finished = (Path(run.config.output_dir) / "probe.json").is_file()
        start = time.perf_counter()
        results[run.name] = _run_and_probe(run)
        if not finished:
            trained.append(time.perf_counter() - start)
        _write(_table(config, base, rows, results), out)
        print(progress(len(results), len(runs), trained), flush=True)
    print(f"mae ablate: the base architecture with random weights ({REFERENCE})", flush=True)
    table = dict(_table(config, base, rows, results), reference=_reference(runs[0], out))
    _write(table, out)
    return table


def progress(done: int, total: int, trained: list[float]) -> str:
    """Runs done and left, and the time left at the mean wall time of the runs trained so far."""
    line = f"mae ablate: {done}/{total} runs done, {total - done} left"
    if trained and done < total:
        line += f", about {format_duration(sum(trained) / len(trained) * (total - done))} to go"
    return line


def _table(config: AblateConfig, base: PretrainConfig, rows, results: dict) -> dict:
    return {
        "base": config.base,
        "settings": {k: v for k, v in config_to_dict(base).items() if k not in ("output_dir", "resume")},
        "probe": f"weighted k-NN (k=20, T=0.07) of the cls token, {base.knn_images} training images"
                 + (f"; fine-tuning {plural(config.finetune_epochs, 'epoch')}" if config.finetune_epochs else ""),
        "rows": [dict(axis=axis, setting=AXES[axis][0], value=value, run=name, base=name == BASE,
                      **results.get(name, {})) for axis, value, name in rows],
    }


def markdown(table: dict) -> str:
    """Table 1 style: one small table per axis, the base row marked, the best top-1 in bold."""
    s = table["settings"]
    arch = (f"ViT width {s['embed_dim']}, depth {s['depth']}, patch {s['patch_size']}, {format_size(s['img_size'])}, "
            f"decoder {s['decoder_depth']} x {s['decoder_embed_dim']}")
    lines = [
        "# Ablation", "",
        f"Base `{table['base']}`: {arch}; mask ratio {s['mask_ratio']}, {s['mask_type']} masks, mask tokens in "
        f"the {'encoder' if s['encoder_mask_tokens'] else 'decoder'}, target "
        f"{'norm_pix' if s['norm_pix_loss'] else s['target']}. Data: {s['data'] or 'synthetic'}. "
        f"Every run: {plural(s['epochs'], 'epoch')}, seed {s['seed']}. Probe: {table['probe']}.", "",
        "Loss: the last epoch's mean training loss (not comparable across targets).", "",
    ]
    if "reference" in table:
        ref = table["reference"]
        finetuned = f", fine-tune top-1 {ref['finetune_top1']:.1f}%" if "finetune_top1" in ref else ""
        lines += [f"Random weights, not pretrained (the same probes): k-NN top-1 {ref['knn_top1']:.1f}%, "
                  f"top-5 {ref['knn_top5']:.1f}%{finetuned}.", ""]
    # (key, heading) of the accuracy columns; the best of each in bold
    columns = [("knn_top1", "k-NN top-1 (%)"), ("knn_top5", "k-NN top-5 (%)")]
    if any("finetune_top1" in r for r in table["rows"]):
        columns.append(("finetune_top1", "fine-tune top-1 (%)"))
    for axis, (setting, title) in AXES.items():
        rows = [r for r in table["rows"] if r["axis"] == axis]
        if not rows:
            continue
        best = {key: max((r[key] for r in rows if key in r), default=None) for key, _ in columns}
        heading = " | ".join([setting] + [h for _, h in columns] + ["loss", "steps", "seconds"])
        lines += [f"### {title}", "", f"| {heading} |", "|---|" + "---:|" * (len(columns) + 3)]
        for r in rows:
            value = f"{r['value']} (base)" if r["base"] else str(r["value"])
            if "knn_top1" not in r:
                lines.append(f"| {value} | not run yet |" + " |" * (len(columns) + 2))
                continue
            cells = [f"**{r[key]:.1f}**" if r[key] == best[key] else f"{r[key]:.1f}" for key, _ in columns]
            loss = "" if r["final_epoch_loss"] is None else f"{r['final_epoch_loss']:.4f}"
            lines.append(f"| {value} | " + " | ".join(cells) + f" | {loss} | {r['steps']} | {r['seconds']} |")
        lines.append("")
    return "\n".join(lines)


def plot(table: dict, path: Path) -> Path | None:
    """Top-1 against the mask ratio (the paper's Figure 5), one line per probe; None without two ratios run."""
    rows = sorted((r for r in table["rows"] if r["axis"] == "mask_ratios" and "knn_top1" in r),
                  key=lambda r: r["value"])
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for key, label in (("finetune_top1", "fine-tuning"), ("knn_top1", "k-NN")):
        points = [(100 * r["value"], r[key]) for r in rows if key in r]
        if points:
            line, = ax.plot(*zip(*points), marker="o", label=label)
            if key in table.get("reference", {}):
                ax.axhline(table["reference"][key], ls="--", color=line.get_color(), label=f"{label}, random init")
    ax.set_xlabel("masking ratio (%)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{plural(table['settings']['epochs'], 'epoch')} per run", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
