"""Layer-wise lr decay param groups against the formula, parameter by parameter."""

import pytest
import torch

from mae.engine.optim.lr_decay import layer_id_for_vit, param_groups_lrd
from mae.models import VisionTransformer

DEPTH = 3


def classifier(**kw):
    model = VisionTransformer(img_size=16, patch_size=8, embed_dim=32, depth=DEPTH, num_heads=2,
                              num_classes=5, global_pool="avg", **kw)
    model.pos_embed.requires_grad_(True)  # learned while fine-tuning
    return model


def expected_layer(name: str) -> int:
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed."):
        return 0
    for i in range(DEPTH):
        if name.startswith(f"blocks.{i}."):
            return i + 1
    return DEPTH + 1  # fc_norm, head


@pytest.mark.parametrize("decay", [0.65, 0.75])
def test_every_parameter_gets_the_formulas_scale_and_weight_decay(decay):
    model = classifier()
    groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=decay)
    seen = {}
    for group in groups:
        assert len(group["params"]) == len(group["param_names"])
        for name, param in zip(group["param_names"], group["params"]):
            seen[name] = (group["lr_scale"], group["weight_decay"])
            assert param is dict(model.named_parameters())[name]
    assert sorted(seen) == sorted(n for n, _ in model.named_parameters())  # each exactly once
    for name, param in model.named_parameters():
        layer = expected_layer(name)
        no_decay = param.ndim == 1 or name in ("cls_token", "pos_embed")
        assert seen[name][0] == pytest.approx(decay ** (DEPTH + 1 - layer)), name
        assert seen[name][1] == (0.0 if no_decay else 0.05), name
    # one group per (layer, decay kind) present
    assert len(groups) == len({(expected_layer(n), p.ndim == 1 or n in ("cls_token", "pos_embed"))
                               for n, p in model.named_parameters()})


def test_hand_checked_values():
    groups = {n: g for g in param_groups_lrd(classifier(), 0.05, layer_decay=0.5) for n in g["param_names"]}
    assert groups["head.weight"]["lr_scale"] == 1.0 and groups["head.weight"]["weight_decay"] == 0.05
    assert groups["fc_norm.weight"]["lr_scale"] == 1.0 and groups["fc_norm.weight"]["weight_decay"] == 0.0
    assert groups["blocks.2.mlp.fc1.weight"]["lr_scale"] == 0.5
    assert groups["blocks.0.attn.qkv.weight"]["lr_scale"] == 0.125
    assert groups["blocks.0.attn.qkv.bias"]["weight_decay"] == 0.0
    assert groups["patch_embed.proj.weight"]["lr_scale"] == 0.0625
    assert groups["cls_token"]["lr_scale"] == 0.0625 and groups["cls_token"]["weight_decay"] == 0.0
    assert groups["pos_embed"]["weight_decay"] == 0.0


def test_frozen_parameters_are_left_out_and_wrapper_prefixes_ignored():
    model = classifier()
    model.pos_embed.requires_grad_(False)
    model.blocks[0].requires_grad_(False)
    names = [n for g in param_groups_lrd(model) for n in g["param_names"]]
    assert "pos_embed" not in names and not any(n.startswith("blocks.0.") for n in names)
    assert layer_id_for_vit("module.blocks.2.norm1.weight", DEPTH + 1) == 3
    assert layer_id_for_vit("_orig_mod.cls_token", DEPTH + 1) == 0
    assert layer_id_for_vit("module.head.weight", DEPTH + 1) == DEPTH + 1


def test_optimizers_take_the_groups_and_keep_their_scales():
    model = classifier()
    optimizer = torch.optim.AdamW(param_groups_lrd(model, layer_decay=0.5), lr=1e-3, betas=(0.9, 0.999))
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    scales = {group["name"]: group["lr_scale"] for group in optimizer.state_dict()["param_groups"]}
    assert scales["layer_4_decay"] == 1.0 and scales["layer_0_no_decay"] == 0.0625


def test_bad_layer_decay_and_model():
    with pytest.raises(ValueError, match="layer_decay must be in"):
        param_groups_lrd(classifier(), layer_decay=0.0)
    with pytest.raises(ValueError, match="needs a ViT with .blocks"):
        param_groups_lrd(torch.nn.Linear(2, 2))
