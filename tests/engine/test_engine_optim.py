import math

import pytest
import torch

import mae
from mae.engine.optim.optimizers import adamw, optimizer_step, param_groups
from mae.engine.optim.scaling import resolve_batch, scaled_lr
from mae.engine.optim.schedules import set_lr, warmup_cosine

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)


def test_biases_and_norms_get_no_weight_decay_and_frozen_tables_are_left_out():
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    plain, decay = param_groups(model, 0.05)
    assert (plain["weight_decay"], decay["weight_decay"]) == (0.0, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    plain_names = {names[id(p)] for p in plain["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            assert name not in plain_names | decay_names
        elif name.endswith(".bias") or "norm" in name:
            assert name in plain_names, name
        else:
            assert name in decay_names and param.ndim >= 2, name
    assert {"pos_embed", "decoder_pos_embed"} & (plain_names | decay_names) == set()
    assert "blocks.0.attn.qkv.weight" in decay_names and "blocks.0.norm1.weight" in plain_names
    assert len(plain_names) + len(decay_names) == sum(p.requires_grad for p in model.parameters())


def test_linear_scaling_rule_and_batch_resolution():
    assert scaled_lr(1.5e-4, 4096) == pytest.approx(2.4e-3)
    assert resolve_batch(64, 2, None, 4) == (2, 512)
    assert resolve_batch(64, 1, 4096, 8) == (8, 4096)
    with pytest.raises(ValueError, match="not divisible by --batch-size 64 x 3 process"):
        resolve_batch(64, 1, 4096, 3)
    with pytest.raises(ValueError, match="contradicts"):
        resolve_batch(64, 4, 4096, 8)


def test_schedule_matches_the_formula():
    lr, min_lr, warmup, total = 1e-3, 1e-5, 5.0, 50.0
    assert warmup_cosine(0, lr, min_lr, warmup, total) == 0.0
    for t in (0.5, 2.0, 4.99):
        assert warmup_cosine(t, lr, min_lr, warmup, total) == pytest.approx(lr * t / warmup)
    for t in (5.0, 17.3, 30.0, 49.9, 50.0):
        expected = min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
        assert warmup_cosine(t, lr, min_lr, warmup, total) == pytest.approx(expected)
    assert warmup_cosine(27.5, lr, min_lr, warmup, total) == pytest.approx((lr + min_lr) / 2)
    assert warmup_cosine(0, lr, min_lr, 0, total) == lr


def test_set_lr_honours_group_scales_and_adamw_uses_the_papers_betas():
    w = torch.nn.Parameter(torch.ones(3, 3))
    b = torch.nn.Parameter(torch.zeros(3))
    opt = adamw([{"params": [w], "lr_scale": 0.5}, {"params": [b]}], lr=1.0, betas=(0.9, 0.95))
    set_lr(opt, 2e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 2e-3]
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)
    # one AdamW step matches its definition (bias-corrected first step: lr * sign(grad))
    w.grad = torch.full_like(w, 0.3)
    b.grad = None
    opt.step()
    decayed = 1 - 1e-3 * opt.param_groups[0]["weight_decay"]
    assert torch.allclose(w, torch.full_like(w, decayed - 1e-3), atol=1e-6)


def test_optimizer_step_clips_the_gradient_norm_then_steps_and_zeroes():
    for clip, expected_scale in ((None, 1.0), (1.0, 0.1), (100.0, 1.0)):
        weight = torch.nn.Parameter(torch.zeros(2))
        weight.grad = torch.tensor([6.0, 8.0])  # norm 10
        optimizer = torch.optim.SGD([weight], lr=1.0)
        optimizer_step(optimizer, torch.amp.GradScaler("cpu", enabled=False), [weight], clip)
        assert torch.allclose(weight.detach(), -expected_scale * torch.tensor([6.0, 8.0]))
        assert weight.grad is None
