"""The benchmark measures the right thing: FLOPs, step timing, memory, reports, the CLI."""

import json

import pytest
import torch

import mae
from helpers import TINY
from mae.benchmarking import BenchSettings, build_variants, machine, markdown_table, publish, run_benchmark, share_parts
from mae.benchmarking.measure import (
    StepTimer,
    matmul_flops_per_s,
    plain_attention,
    saved_activation_bytes,
    training_flops_per_image,
)
from mae.benchmarking.runner import step_noise
from mae.benchmarking.variants import set_fused_attention
from mae.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def analytic_training_flops(model, tokens_encoder: int, tokens_decoder: int, tokens_removed: int) -> float:
    """6 * weights * tokens for every linear layer (forward 2, backward 4) plus attention;
    the decoder's prediction head runs on the removed patches only.

    Attention's two batched matmuls cost 4 * T^2 * D per layer forward, 3x that with backward.
    """
    def linear_weights(prefix):
        return sum(p.numel() for n, p in model.named_parameters()
                   if n.startswith(prefix) and n.endswith("weight") and p.ndim == 2)

    enc, dec = model.config["embed_dim"], model.config["decoder_embed_dim"]
    flops = 6 * linear_weights("blocks") * tokens_encoder
    flops += 6 * linear_weights("decoder_blocks") * tokens_decoder
    flops += 6 * linear_weights("decoder_pred") * tokens_removed
    flops += 6 * linear_weights("decoder_embed") * tokens_encoder
    flops += 3 * 4 * tokens_encoder**2 * enc * model.config["depth"]
    flops += 3 * 4 * tokens_decoder**2 * dec * model.config["decoder_depth"]
    return flops


def test_flop_count_matches_the_analytic_count():
    model = mae.create_model("mae_vit_base_patch16", depth=2, decoder_depth=2)
    counted = training_flops_per_image(model, (224, 224), 3, mask_ratio=0.75)
    expected = analytic_training_flops(model, 1 + 49, 1 + 196, 147)
    # what the formula leaves out: the patch embedding (49 patches, no input gradient)
    assert expected < counted < expected * 1.02


def test_flop_count_grows_with_what_the_encoder_sees():
    variants = build_variants(["ours", "mask-token"], "mae_vit_tiny_patch16", 0.75, **TINY)
    ours, baseline = (training_flops_per_image(v, (32, 32), 3, 0.75) for v in variants.values())
    full = training_flops_per_image(variants["ours"], (32, 32), 3, 0.0)
    assert ours < baseline and baseline == pytest.approx(full, rel=0.05)


def test_flop_count_is_the_same_for_either_attention_path_and_restores_it():
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    set_fused_attention(model, True)
    fused = training_flops_per_image(model, (32, 32), 3, 0.75)
    assert all(m.fused is True for m in model.modules() if hasattr(m, "fused"))
    set_fused_attention(model, False)
    assert training_flops_per_image(model, (32, 32), 3, 0.75) == fused
    with plain_attention(model):
        pass
    assert all(m.fused is False for m in model.modules() if hasattr(m, "fused"))


def test_saved_activations_count_activations_not_parameters():
    layer = torch.nn.Linear(16, 32)
    x = torch.randn(8, 16)
    saved = saved_activation_bytes(layer, lambda: layer(x).square().sum())
    # linear keeps its input (the weight is a parameter); square keeps its input, [8, 32]
    assert saved == x.nbytes + 8 * 32 * 4
    assert layer.weight.grad is None  # left clean


def test_mfu_is_against_the_best_rate_seen_and_never_above_one(monkeypatch):
    import mae.benchmarking.runner as runner

    monkeypatch.setattr(runner, "matmul_flops_per_s", lambda device, dtype: 1.0)  # a peak far too low
    variants = build_variants(["ours", "mask-token"], "mae_vit_tiny_patch16", 0.75, **TINY)
    run = run_benchmark(BenchSettings(img_size=32, batch=2, steps=2, warmup=0), variants)
    best = max(r["achieved_flops_per_s"] for r in run["results"])
    assert run["peak_flops_per_s"] == best and run["matmul_flops_per_s"] == 1.0
    assert max(r["mfu"] for r in run["results"]) == 1.0
    assert all(0 < r["mfu"] <= 1 for r in run["results"])


def test_matmul_peak_is_the_best_backend(monkeypatch):
    import mae.benchmarking.measure as measure

    calls = []
    real = measure.onednn_linear
    monkeypatch.setattr(measure, "onednn_linear", lambda a, b, bias: calls.append(1) or real(a, b, bias))
    assert measure.matmul_flops_per_s(torch.device("cpu"), torch.float32, size=64, repeats=1) > 0
    assert len(calls) == 3 if torch.backends.mkldnn.is_available() else not calls  # warm-up 2 + timed 1
    calls.clear()
    measure.matmul_flops_per_s(torch.device("cpu"), torch.bfloat16, size=64, repeats=1)
    assert not calls  # bf16 runs through torch's path only


@pytest.mark.parametrize("seconds_per_1024, sizes", [(4.0, [512]), (0.5, [512, 1024]), (0.01, [512, 1024, 2048])])
def test_the_cpu_peak_grows_its_matmul_only_while_one_is_quick(monkeypatch, seconds_per_1024, sizes):
    import mae.benchmarking.measure as measure

    rate, seen = 2 * 1024**3 / seconds_per_1024, []
    monkeypatch.setattr(measure, "square_matmul_rate", lambda device, dtype, n, repeats: seen.append(n) or rate)
    assert measure.matmul_flops_per_s(torch.device("cpu"), torch.bfloat16) == rate
    assert seen == sizes  # a 512 matmul at that rate takes 1/8 of the 1024's time
    seen.clear()
    measure.matmul_flops_per_s(torch.device("cpu"), torch.bfloat16, size=64)
    assert seen == [64]


def test_timer_and_matmul_rate():
    timer = StepTimer(torch.device("cpu"))
    for _ in range(3):
        with timer.region():
            torch.ones(10).sum()
    assert len(timer.seconds()) == 3 and all(t >= 0 for t in timer.seconds())
    rate = matmul_flops_per_s(torch.device("cpu"), torch.float32, size=128, repeats=2)
    assert 1e6 < rate < 1e15


def test_masking_noise_is_a_function_of_seed_and_step():
    assert torch.equal(step_noise(0, 3, 2, 16), step_noise(0, 3, 2, 16))
    assert not torch.equal(step_noise(0, 3, 2, 16), step_noise(0, 4, 2, 16))
    assert not torch.equal(step_noise(0, 3, 2, 16), step_noise(1, 3, 2, 16))


def test_shared_weights_are_one_tensor_and_shapes_must_fit():
    variants = build_variants(["ours", "mask-token"], "mae_vit_tiny_patch16", 0.75, **TINY)
    ours, baseline = variants["ours"], variants["mask-token"]
    assert baseline.blocks[0].attn.qkv.weight is ours.blocks[0].attn.qkv.weight
    assert baseline.encoder_mask_tokens and baseline.mask_token is not ours.mask_token
    wider = mae.create_model("mae_vit_tiny_patch16", **{**TINY, "embed_dim": 32})
    with pytest.raises(ValueError, match="cannot share"):
        share_parts(wider, ours)


def test_side_by_side_run_reports_every_variant():
    pytest.importorskip("transformers")
    variants = build_variants(["ours", "mask-token", "hf"], "mae_vit_tiny_patch16", 0.75, **TINY)
    run = run_benchmark(BenchSettings(img_size=32, batch=2, steps=3, warmup=1), variants)
    results = {r["variant"]: r for r in run["results"]}
    assert list(results) == ["ours", "mask-token", "hf"]
    for r in results.values():
        assert len(r["step_s"]) == 3 and r["images_per_s"] > 0 and r["loss_finite"]
        assert 0 < r["mfu"] < 1
    assert results["ours"]["time_vs_reference"] == 1.0
    # the same model but for the patch embedding, which ours runs on the kept patches only
    # (forward and weight gradient, 2 + 2 FLOPs per weight and patch, for the L - K removed
    # ones), and the prediction head, which ours runs on the removed ones only (forward and
    # both gradients, 6 FLOPs per weight and token, for the K kept ones and the cls token)
    removed_patch_flops = 4 * (8 * 8 * 3) * 64 * (16 - 4)
    kept_head_flops = 6 * 32 * (8 * 8 * 3) * (1 + 4)
    assert (results["hf"]["flops_per_image"] - results["ours"]["flops_per_image"]
            == removed_patch_flops + kept_head_flops)
    assert results["mask-token"]["saved_activation_bytes"] > results["ours"]["saved_activation_bytes"]
    table = markdown_table({**run, "model": "tiny"})
    assert table.count("\n| ") == 4 and "| hf |" in table


def test_full_head_variant_shares_our_weights_and_loss_and_costs_the_kept_patches_head():
    variants = build_variants(["ours", "full-head"], "mae_vit_tiny_patch16", 0.75, **TINY)
    ours, full = variants.values()
    assert full.mae is ours
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    torch.testing.assert_close(full(imgs, 0.75, noise).loss, ours(imgs, 0.75, noise).loss)
    extra = training_flops_per_image(full, (32, 32), 3, 0.75) - training_flops_per_image(ours, (32, 32), 3, 0.75)
    assert extra == 6 * 32 * (8 * 8 * 3) * 4  # the head on the 4 kept patches (forward, both gradients)


def test_each_side_trains_with_its_own_default_optimizer():
    pytest.importorskip("transformers")
    from mae.benchmarking.step import default_optimizers

    variants = build_variants(["ours", "full-head", "hf"], "mae_vit_tiny_patch16", 0.75, **TINY)
    optimizers = default_optimizers(variants)
    assert optimizers["ours"] is optimizers["full-head"]  # shared weights, one state each
    for name, betas, lr, decay in [("ours", (0.9, 0.95), 1.5e-4, 0.05), ("hf", (0.9, 0.999), 5e-5, 0.0)]:
        optimizer = optimizers[name]
        trained = {id(p) for p in variants[name].parameters() if p.requires_grad}
        assert {id(p) for g in optimizer.param_groups for p in g["params"]} == trained
        assert all(g["betas"] == betas and g["lr"] == lr and g["fused"] for g in optimizer.param_groups)
        assert max(g["weight_decay"] for g in optimizer.param_groups) == decay
    with pytest.raises(ValueError, match="--warmup"):  # refused before anything is compiled
        run_benchmark(BenchSettings(img_size=32, batch=2, warmup=0), build_variants(
            ["ours", "ours-compiled"], "mae_vit_tiny_patch16", 0.75, **TINY))


def test_huggingface_twin_computes_our_loss():
    pytest.importorskip("transformers")
    variants = build_variants(["ours", "hf"], "mae_vit_tiny_patch16", 0.75, **TINY)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    ours, theirs = (v(imgs, 0.75, noise).loss for v in variants.values())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="mask ratio"):
        variants["hf"](imgs, 0.5, noise)


@pytest.mark.parametrize("settings, message", [
    (dict(batch=0), "--batch"),
    (dict(precision="fp16"), "--precision"),
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(device="tpu"), "--device"),
    (dict(compile=True, warmup=0), "--warmup"),
    (dict(steps=0), "--steps"),
])
def test_bad_settings_are_refused_before_work(settings, message):
    with pytest.raises(ValueError, match=message):
        BenchSettings(**settings).check()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        BenchSettings(device="cuda").check()


def test_command_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["bench", "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--batch", "2", "--no-compile",
                 "--precision", "fp32", "--steps", "2", "--warmup", "1", "--decoder-depth", "1", "--compare",
                 "mask-token", "--no-fused-attention", "--matmul-backend", "onednn", "--out", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["command"].startswith("mae bench --model mae_vit_tiny_patch16 --img-size 32 --batch-size 2")
    assert "--compare mask-token" in record["command"] and "--no-fused-attention" in record["command"]
    assert record["machine"]["cpu_cores"] >= 1 and record["model"] == "mae_vit_tiny_patch16"
    assert record["settings"]["batch"] == 2 and record["fused_attention"] is False
    assert record["matmul_backend"] == "onednn" and "--matmul-backend onednn" in record["command"]
    assert [r["variant"] for r in record["results"]] == ["ours", "mask-token"]
    markdown = out.with_suffix(".md").read_text()
    assert "| variant | step ms |" in markdown and "| mask-token |" in markdown
    printed = capsys.readouterr()
    assert "| ours |" in printed.out and "bench:" not in printed.out
    # what it is doing, on stderr as it goes (plain lines: not a terminal)
    lines = printed.err.splitlines()
    assert lines[0] == ("bench: building ours, mask-token (mae_vit_tiny_patch16, 32 px, batch 2, fp32, eager, "
                        "1 warm-up + 2 timed rounds)")
    assert any("warm-up round 1/1 | variant mask-token" in line for line in lines), lines
    assert [line.split(" | ")[1] for line in lines if "| timed round" in line] == ["timed round 1/2", "timed round 2/2"]
    assert lines[-1] == "bench: measuring the peak matmul rate"


def test_command_measures_a_non_square_size_and_records_it_as_given(tmp_path, capsys):
    out = tmp_path / "wide.json"
    assert main(["bench", "--model", "mae_vit_tiny_patch16", "--img-size", "32", "48", "--batch", "2", "--steps", "1",
                 "--warmup", "0", "--no-compile", "--decoder-depth", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert "--img-size 32 48 " in record["command"] and record["settings"]["img_size"] == [32, 48]
    assert "32x48 px" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--model", "vit_giant"], "unknown"),
    (["--img-size", "30"], "not divisible"),
    (["--decoder-depth", "0"], "--decoder-depth"),
    (["--threads", "0"], "--threads"),
])
def test_command_refuses_bad_flags(argv, message, capsys):
    assert main(["bench", "--model", "mae_vit_tiny_patch16", *argv]) == 2
    assert message in capsys.readouterr().err


def test_vs_huggingface_script_reports_both_sides_with_mfu_and_load(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    import importlib.util
    from pathlib import Path

    import mae.benchmarking.runner as runner

    monkeypatch.setattr(runner, "COMPILED_VARIANTS", ())  # ours-compiled eager here: compiling takes minutes
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "vs_huggingface.py"
    spec = importlib.util.spec_from_file_location("vs_huggingface", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "vs.json"
    assert module.main(["--models", "mae_vit_tiny_patch16", "--img-size", "32", "--batch", "2", "--steps", "2",
                        "--precisions", "bf16", "--threads", "1", "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["settings"]["precision"] for r in runs] == ["bf16"]
    for run in runs:
        assert [r["variant"] for r in run["results"]] == ["ours", "ours-compiled", "hf", "hf-eager", "hf-matmul"]
        assert run["reference"] == "ours-compiled" and run["load_average_1min"] >= 0
    rows = [line for line in out.with_suffix(".md").read_text().splitlines() if line.startswith("| mae_vit_tiny")]
    assert len(rows) == 1 and rows[0].count("%") == 3  # MFU of ours, compiled, HF


def test_publish_prints_the_table_and_writes_files_only_when_asked(tmp_path, capsys):
    record = dict(command="python benchmarks/x.py", machine=machine("cpu"), results=[1, 2])
    publish("| a |\n", record, None)
    assert capsys.readouterr().out == "| a |\n" and not list(tmp_path.iterdir())
    publish("| a |\n", record, tmp_path / "x.json")
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'x.json'}" in printed and f"wrote {tmp_path / 'x.md'}" in printed
    assert json.loads((tmp_path / "x.json").read_text())["results"] == [1, 2]
    assert (tmp_path / "x.md").read_text().endswith("| a |\n")


class Measured(Exception):
    pass


@pytest.mark.parametrize("native", [True, False])
def test_the_defaults_measure_a_long_runs_step_compiled_in_the_fastest_precision(monkeypatch, native):
    import mae.benchmarking.bench as bench

    def measure(settings, variants, progress=None):
        raise Measured(settings, list(variants))

    monkeypatch.setattr(bench, "native_bf16", lambda device: native)
    monkeypatch.setattr(bench, "run_benchmark", measure)
    with pytest.raises(Measured) as done:
        main(["bench", "--model", "mae_vit_tiny_patch16", "--img-size", "32", "--compare", "hf", "--compare",
              "mask-token", "full-head"])
    settings, names = done.value.args
    assert settings.compile and settings.warmup >= 1
    assert settings.precision == ("bf16" if native else "fp32")
    assert names == ["ours", "hf", "mask-token", "full-head"]


def test_compile_without_a_warm_up_is_refused_naming_the_way_out(capsys):
    assert main(["bench", "--model", "mae_vit_tiny_patch16", "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert "--warmup" in err and "--no-compile" in err
