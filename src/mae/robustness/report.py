"""The robustness report as Markdown: a summary line per benchmark, then ImageNet-C in full."""

from .benchmarks import BENCHMARKS, SEVERITIES, alexnet_errors


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def markdown(report: dict, checkpoint: str) -> str:
    lines = [f"# Robustness of `{checkpoint}`", "",
             "| benchmark | images | classes scored | top-1 (%) | top-1 error (%) | mCE (%) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, result in report.items():
        title = BENCHMARKS[name].title
        if name == "imagenet_c":
            lines.append(f"| {title} | {result['images']} | | | {_num(result['mean_error'])} (mean) | "
                         f"{_num(result['mce'])} |")
        else:
            lines.append(f"| {title} | {result['images']} | {result['classes_scored']} | "
                         f"{_num(result['top1'])} | {_num(result['error'])} | |")
    corrupted = report.get("imagenet_c")
    if corrupted:
        alexnet = alexnet_errors()
        lines += ["", "## ImageNet-C: top-1 error (%) per corruption and severity", "",
                  "| corruption | " + " | ".join(str(s) for s in SEVERITIES) + " | mean | CE | AlexNet mean |",
                  "| --- |" + " ---: |" * (len(SEVERITIES) + 3)]
        for corruption, row in corrupted["corruptions"].items():
            cells = [_num(row["errors"].get(str(s))) for s in SEVERITIES]
            reference = alexnet.get(corruption)
            lines.append(f"| {corruption} | " + " | ".join(cells) + f" | {_num(row['mean_error'])} | "
                         f"{_num(row['ce'])} | {_num(None if reference is None else 100 * reference)} |")
        complete = ("over all 15 corruptions of the benchmark" if corrupted["mce_complete"] else
                    f"over {corrupted['mce_corruptions']} of the benchmark's 15 corruptions with all five "
                    "severities: not comparable with published mCE")
        lines += ["", f"CE = the corruption's mean error over AlexNet's (Hendrycks & Dietterich 2019); "
                  f"mCE {_num(corrupted['mce'])}% is their mean {complete}. Unnormalised mean error "
                  f"over the {len(corrupted['corruptions'])} corruptions present: "
                  f"{_num(corrupted['mean_error'])}%."]
    return "\n".join(lines) + "\n"
