"""Classifiers from MAE encoders: official checkpoints, heads, pooling, freezing, bad input."""

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import mae
from mae.models.classifier import (
    build_classifier,
    fold_linprobe_head,
    freeze_all_but_last_blocks,
)
from mae.weights import layouts as interop
from mae.weights.load import load_encoder

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)
WIDTH, DEPTH, PATCH, GRID, CLASSES = 128, 2, 8, 4, 10
HEADS = WIDTH // 64  # what load_model infers for a width no named model has


def classifier(source, **kwargs):
    """build_classifier on the encoder that load_encoder reads from `source`."""
    name = None if isinstance(source, (dict, torch.nn.Module)) else str(source)
    return build_classifier(load_encoder(source), **kwargs, name=name)


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(0)
    return mae.create_model("mae_vit_tiny_patch16", **TINY).eval()


def images(n=3, size=32, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- an independent reference


def official_state(pool: str, seed: int = 0) -> dict:
    """Hand-made weights in the official fine-tuned layout (timm ViT names), learned pos_embed."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, std=0.02, mean=0.0):
        return mean + std * torch.randn(*shape, generator=g)

    d = WIDTH
    state = {
        "cls_token": rand(1, 1, d),
        "pos_embed": rand(1, 1 + GRID * GRID, d),
        "patch_embed.proj.weight": rand(d, 3, PATCH, PATCH, std=0.05),
        "patch_embed.proj.bias": rand(d),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        state.update({
            b + "norm1.weight": rand(d, std=0.1, mean=1.0), b + "norm1.bias": rand(d),
            b + "attn.qkv.weight": rand(3 * d, d, std=d ** -0.5), b + "attn.qkv.bias": rand(3 * d),
            b + "attn.proj.weight": rand(d, d, std=d ** -0.5), b + "attn.proj.bias": rand(d),
            b + "norm2.weight": rand(d, std=0.1, mean=1.0), b + "norm2.bias": rand(d),
            b + "mlp.fc1.weight": rand(4 * d, d, std=d ** -0.5), b + "mlp.fc1.bias": rand(4 * d),
            b + "mlp.fc2.weight": rand(d, 4 * d, std=(4 * d) ** -0.5), b + "mlp.fc2.bias": rand(d),
        })
    final = "fc_norm" if pool == "avg" else "norm"
    state[final + ".weight"], state[final + ".bias"] = rand(d, std=0.1, mean=1.0), rand(d)
    state["head.weight"], state["head.bias"] = rand(CLASSES, d, std=0.1), rand(CLASSES)
    return state


def reference_features(state: dict, imgs: torch.Tensor, pool: str) -> torch.Tensor:
    """The official ViT forward written out with functional ops: [N, C, H, W] -> [N, D]."""
    d, hd = WIDTH, WIDTH // HEADS
    x = F.conv2d(imgs, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(len(x), -1, -1), x], dim=1) + state["pos_embed"]
    n, length, _ = x.shape
    for i in range(DEPTH):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (d,), state[b + "norm1.weight"], state[b + "norm1.bias"], eps=1e-6)
        q, k, v = F.linear(h, state[b + "attn.qkv.weight"], state[b + "attn.qkv.bias"]).chunk(3, dim=-1)
        q, k, v = (t.reshape(n, length, HEADS, hd).transpose(1, 2) for t in (q, k, v))
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        h = (attn @ v).transpose(1, 2).reshape(n, length, d)
        x = x + F.linear(h, state[b + "attn.proj.weight"], state[b + "attn.proj.bias"])
        h = F.layer_norm(x, (d,), state[b + "norm2.weight"], state[b + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"])),
                     state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
        x = x + h
    if pool == "avg":
        return F.layer_norm(x[:, 1:].mean(dim=1), (d,), state["fc_norm.weight"], state["fc_norm.bias"], eps=1e-6)
    return F.layer_norm(x, (d,), state["norm.weight"], state["norm.bias"], eps=1e-6)[:, 0]


@pytest.mark.parametrize("pool", ["avg", "token"])
def test_official_finetuned_checkpoint_gives_the_reference_logits(tmp_path, pool):
    state = official_state(pool)
    path = tmp_path / "finetuned.pth"
    torch.save({"model": state, "args": argparse.Namespace(input_size=32, nb_classes=CLASSES)}, path)
    model, report = classifier(path, num_classes=None, global_pool=None)
    assert model.global_pool == pool and report.missing == [] and report.unexpected == []
    imgs = images()
    expected = F.linear(reference_features(state, imgs, pool), state["head.weight"], state["head.bias"])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(imgs), expected, atol=2e-5, rtol=1e-5)
    # the same classes asked for explicitly: the head is kept as well
    same, _ = classifier(path, num_classes=CLASSES, global_pool=pool)
    assert torch.equal(same.head.weight, state["head.weight"])


def test_official_linear_probe_checkpoint_folds_its_batchnorm_head(tmp_path):
    state = official_state("token")
    weight, bias = state.pop("head.weight"), state.pop("head.bias")
    g = torch.Generator().manual_seed(3)
    mean, var = torch.randn(WIDTH, generator=g), torch.rand(WIDTH, generator=g) + 0.5
    state.update({"head.0.running_mean": mean, "head.0.running_var": var,
                  "head.0.num_batches_tracked": torch.tensor(7), "head.1.weight": weight, "head.1.bias": bias})
    torch.save({"model": state}, tmp_path / "linprobe.pth")
    model, _ = classifier(tmp_path / "linprobe.pth", num_classes=None, global_pool=None)
    imgs = images()
    feats = reference_features(state, imgs, "token")
    expected = F.linear((feats - mean) / torch.sqrt(var + 1e-6), weight, bias)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(imgs), expected, atol=2e-5, rtol=1e-5)


# ---------------------------------------------------------------- from pretraining weights


def test_fine_tuning_classifier_from_pretraining_weights(pretrained):
    model, report = classifier(pretrained, num_classes=7)
    assert report.missing == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert {"norm.weight", "norm.bias", "mask_token", "decoder_embed.weight"} <= set(report.unexpected)
    decoder = [k for k in pretrained.state_dict() if k.startswith(("decoder", "mask_token"))]
    assert f"{len(decoder)} decoder tensors" in report.summary()
    assert not hasattr(model, "norm") and model.global_pool == "avg"
    for key, value in model.state_dict().items():
        if key in report.loaded:
            assert torch.equal(value, pretrained.state_dict()[key]), key
    # official head init: trunc-normal std 2e-5, zero bias; fc_norm fresh (1, 0)
    assert 0 < model.head.weight.std() < 5e-5 and torch.all(model.head.bias == 0)
    assert torch.all(model.fc_norm.weight == 1) and torch.all(model.fc_norm.bias == 0)
    # everything trains, the position table included (learned while fine-tuning)
    assert all(p.requires_grad for p in model.parameters())
    rates = [getattr(block.drop_path, "p", 0.0) for block in model.blocks]
    assert rates == pytest.approx([0.0, 0.1])  # stochastic depth growing to drop_path_rate
    assert model(images()).shape == (3, 7)


def test_token_pooling_keeps_the_encoders_final_norm(pretrained):
    model, report = classifier(pretrained, num_classes=4, global_pool="token", drop_path_rate=0.0)
    assert report.missing == ["head.bias", "head.weight"]
    assert torch.equal(model.norm.weight, pretrained.norm.weight)
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(images()), pre_logits=True)
        torch.testing.assert_close(feats, pretrained.forward_features(images())[:, 0])


def test_linear_probe_head_is_batchnorm_without_affine_then_linear(pretrained):
    model, _ = classifier(pretrained, num_classes=10, global_pool="token", head="linprobe")
    norm, linear = model.head
    assert isinstance(norm, torch.nn.BatchNorm1d)
    assert not norm.affine and norm.weight is None and norm.bias is None and norm.eps == 1e-6
    assert list(norm.parameters()) == []
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.1.weight", "head.1.bias"]
    assert 0.006 < linear.weight.std() < 0.014 and torch.all(linear.bias == 0)  # std 0.01
    assert all(block.drop_path.__class__.__name__ == "Identity" for block in model.blocks)
    model.train()
    model(images(8)).sum().backward()
    assert model.blocks[0].attn.qkv.weight.grad is None and linear.weight.grad is not None


def test_other_resolution_resamples_the_position_table(pretrained):
    model, report = classifier(pretrained, num_classes=3, img_size=48)
    assert model.pos_embed.shape == (1, 1 + 6 * 6, 64) and model.pos_embed.requires_grad
    assert any("resampled" in note for note in report.notes)
    assert model(images(2, 48)).shape == (2, 3)


def test_every_source_layout_loads_the_same_encoder(tmp_path, pretrained):
    run = tmp_path / "run"
    mae.save_model(pretrained, run / "checkpoints" / "epoch_0001" / "model.safetensors")
    hf = tmp_path / "hf"
    hf.mkdir()
    save_file({k: v.contiguous() for k, v in interop.ours_to_hf(pretrained.state_dict()).items()},
              hf / "model.safetensors")
    (hf / "config.json").write_text(json.dumps(interop.hf_config_from_ours(pretrained.config)))
    torch.save({"model": pretrained.state_dict()}, tmp_path / "official.pth")
    reference, _ = classifier(pretrained, num_classes=5, global_pool="token")
    for source in (run, run / "checkpoints" / "epoch_0001" / "model.safetensors", hf,
                   tmp_path / "official.pth", pretrained.state_dict()):
        model, report = classifier(source, num_classes=5, global_pool="token")
        assert report.missing == ["head.bias", "head.weight"], source
        for key in report.loaded:
            assert torch.equal(model.state_dict()[key], reference.state_dict()[key]), (source, key)


# ---------------------------------------------------------------- after building


def test_partial_fine_tuning_trains_the_last_blocks_norm_and_head(pretrained):
    model, _ = classifier(pretrained, num_classes=3)
    trainable = freeze_all_but_last_blocks(model, 1)
    assert trainable == [n for n, _ in model.named_parameters()
                         if n.startswith(("blocks.1.", "fc_norm.", "head."))]
    assert not model.pos_embed.requires_grad and not model.blocks[0].norm1.weight.requires_grad
    assert freeze_all_but_last_blocks(model, 0) == ["fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"]
    with pytest.raises(ValueError, match="0 to 2 last blocks"):
        freeze_all_but_last_blocks(model, 3)


def test_folded_linear_probe_saves_and_loads_as_a_plain_classifier(tmp_path, pretrained):
    model, _ = classifier(pretrained, num_classes=6, global_pool="token", head="linprobe")
    model.train()
    with torch.no_grad():
        for seed in range(3):  # running statistics away from (0, 1)
            model(images(16, seed=seed) * 2 + 1)
    model.eval()
    folded = fold_linprobe_head(model)
    assert isinstance(model.head, torch.nn.Sequential)  # the original is left as it was
    imgs = images(4, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(folded(imgs), model(imgs), atol=1e-5, rtol=1e-5)
        mae.save_model(folded, tmp_path / "probe.safetensors")
        loaded, report = classifier(tmp_path / "probe.safetensors", num_classes=None, global_pool=None)
        assert report.missing == []
        torch.testing.assert_close(loaded.eval()(imgs), model(imgs), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no BatchNorm"):
        fold_linprobe_head(folded)


# ---------------------------------------------------------------- bad input


def test_checkpoint_without_an_encoder_is_refused(tmp_path, pretrained):
    decoder_only = {k: v for k, v in pretrained.state_dict().items() if k.startswith(("decoder", "mask_token"))}
    torch.save({"model": decoder_only}, tmp_path / "decoder.pth")
    save_file({k: v.contiguous() for k, v in decoder_only.items()}, tmp_path / "decoder.safetensors")
    for source in (decoder_only, tmp_path / "decoder.pth", tmp_path / "decoder.safetensors"):
        with pytest.raises(ValueError, match="holds no ViT encoder weights.*missing cls_token"):
            classifier(source, num_classes=10)
    headless = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("blocks.")}
    with pytest.raises(ValueError, match="missing blocks.0.attn.qkv.weight"):
        classifier(headless, num_classes=10)
    with pytest.raises(ValueError, match="does not exist"):
        classifier(tmp_path / "nowhere.pth", num_classes=10)


def test_class_count_mismatch_is_an_error_unless_the_head_is_dropped(tmp_path):
    state = official_state("avg")
    with pytest.raises(ValueError, match=f"head for {CLASSES} classes but 100 were asked for.*drop_head"):
        classifier(state, num_classes=100)
    model, report = classifier(state, num_classes=100, drop_head=True)
    assert model.head.out_features == 100 and report.missing == ["head.bias", "head.weight"]
    assert any(f"{CLASSES}-class head was not used" in note for note in report.notes)


def test_bad_arguments(pretrained):
    with pytest.raises(ValueError,
                       match=r"has no classification head .* train one first \(mae finetune or mae linprobe"):
        classifier(pretrained, num_classes=None)
    with pytest.raises(ValueError, match="head must be one of"):
        classifier(pretrained, num_classes=3, head="mlp")
    with pytest.raises(ValueError, match="global_pool must be"):
        classifier(pretrained, num_classes=3, global_pool="max")
    with pytest.raises(ValueError, match="drop_path_rate"):
        classifier(pretrained, num_classes=3, drop_path_rate=1.5)
    with pytest.raises(ValueError, match="expected an mae model"):
        classifier(torch.nn.Linear(2, 2), num_classes=3)
