"""The fast paths compute what the plain ones do: attention kernels, bf16, embedding only
the kept patches (the mask-token baseline the Table 2 benchmark compares against is tested
in test_encoder_mask_tokens.py)."""

import pytest
import torch
import torch.nn.functional as F

import mae
import mae.models.mae as mae_model
from helpers import TINY
from mae.benchmarking import set_fused_attention
from mae.models.masking import random_masking, take_rows
from mae.models.vit import Attention, plain_bf16_max_tokens

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw):
    torch.manual_seed(0)
    return mae.create_model("mae_vit_tiny_patch16", **{**TINY, **kw})


def loss_and_grads(model, imgs, noise, mask_ratio=0.75, return_pred=True):
    model.zero_grad(set_to_none=True)
    out = model(imgs, mask_ratio, noise, return_pred=return_pred)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_sdpa_and_plain_attention_agree_forward_and_backward(dtype, tol):
    model = tiny().to(dtype)
    imgs, noise = torch.randn(3, 3, 32, 32, dtype=dtype), torch.rand(3, 16)
    set_fused_attention(model, True)
    fused, fused_grads = loss_and_grads(model, imgs, noise)
    set_fused_attention(model, False)
    plain, plain_grads = loss_and_grads(model, imgs, noise)
    torch.testing.assert_close(fused.pred, plain.pred, atol=tol, rtol=tol)
    torch.testing.assert_close(fused.loss, plain.loss, atol=tol, rtol=tol)
    assert fused_grads.keys() == plain_grads.keys()
    for name in fused_grads:
        torch.testing.assert_close(fused_grads[name], plain_grads[name], atol=tol, rtol=1e-4, msg=name)


# pixels and norm_pix: the head's rows reordered to the image's own pixel order; hog: patchify's
@pytest.mark.parametrize("target, mask_ratio", [("pixels", 0.75), ("norm_pix", 0.5), ("norm_pix", 0.0),
                                                ("hog", 0.75)])
def test_head_and_loss_on_removed_patches_only_equal_the_full_head_loss(target, mask_ratio):
    model = tiny(target=target).double()
    imgs, noise = torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.rand(3, 16)
    fast, fast_grads = loss_and_grads(model, imgs, noise, mask_ratio, return_pred=False)
    assert fast.pred is None  # the training call predicts the removed patches only
    full, full_grads = loss_and_grads(model, imgs, noise, mask_ratio, return_pred=True)
    reference = model.forward_loss(imgs, full.pred, full.mask)  # every patch predicted, then masked
    torch.testing.assert_close(fast.loss, reference, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(full.loss, reference, atol=1e-12, rtol=1e-12)
    assert fast_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], atol=1e-12, rtol=1e-9, msg=name)


def test_the_head_runs_on_the_removed_patches_only(monkeypatch):
    model = tiny()
    rows = []

    def head_spy(x, weight, bias=None):  # the training call's head: decoder_pred's rows reordered
        if weight.shape == model.decoder_pred.weight.shape:
            rows.append(x.shape[1])
        return F.linear(x, weight, bias)

    monkeypatch.setattr(mae_model, "linear", head_spy)
    model.decoder_pred.register_forward_hook(lambda m, i, o: rows.append(o.shape[1]))  # the module's own
    model(torch.randn(2, 3, 32, 32), 0.75)
    model(torch.randn(2, 3, 32, 32), 0.75, return_pred=True)
    assert rows == [12, 16]


def test_the_head_in_image_pixel_order_is_patchify_order_rearranged():
    model = tiny()
    features = torch.randn(2, 5, 32)
    ours = model.head_channels_first(features)  # [N, R, C*p*p]
    official = model.decoder_pred(features)  # [N, R, p*p*C]
    torch.testing.assert_close(ours.unflatten(-1, (3, 64)), official.unflatten(-1, (64, 3)).transpose(-1, -2))


def test_take_rows_is_gather_of_whole_rows_forward_and_backward():
    x = torch.randn(3, 10, 7, dtype=torch.float64, requires_grad=True)
    ids = torch.argsort(torch.rand(3, 10), dim=1)[:, :6]
    taken = take_rows(x, ids)
    expected = torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, 7))
    assert torch.equal(taken, expected)
    weights = torch.randn(3, 6, 7, dtype=torch.float64)
    (grad,) = torch.autograd.grad((taken * weights).sum(), x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.equal(grad, expected_grad)


def test_automatic_attention_path_choice():
    attn = Attention(64, num_heads=4)
    limit = Attention.PLAIN_CPU_MAX_TOKENS[torch.bfloat16]
    short, long = torch.zeros(1, 4, 50, 16), torch.zeros(1, 4, limit, 16)
    assert not attn.use_sdpa(torch.zeros(1, 4, limit - 1, 16).bfloat16())
    assert attn.fused is None
    assert not attn.use_sdpa(short.bfloat16())  # plain: measured faster in bf16 on CPU
    assert attn.use_sdpa(long.bfloat16())  # SDPA catches up on long sequences
    assert attn.use_sdpa(short)  # float32: SDPA
    attn.fused = True
    assert attn.use_sdpa(short.bfloat16())
    attn.fused = False
    assert not attn.use_sdpa(short)


def test_bf16_autocast_step_stays_close_to_float32():
    model = tiny()
    imgs, noise = torch.randn(4, 3, 32, 32), torch.rand(4, 16)
    ref, ref_grads = loss_and_grads(model, imgs, noise)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, low_grads = loss_and_grads(model, imgs, noise)
    assert low.pred.dtype == torch.bfloat16 and low.loss.dtype == torch.float32
    assert torch.equal(low.mask, ref.mask)
    torch.testing.assert_close(low.loss, ref.loss, rtol=2e-2, atol=0)
    torch.testing.assert_close(low.pred.float(), ref.pred, rtol=0, atol=0.1)
    for name, grad in ref_grads.items():  # same direction, within bf16's precision
        cosine = torch.nn.functional.cosine_similarity(low_grads[name].flatten(), grad.flatten(), dim=0)
        assert cosine > 0.98, name


@pytest.mark.slow
def test_compiled_bf16_step_equals_the_eager_one():
    """What a long bf16 run executes by default (mae.engine.compute.compile_plan) against eager mode."""
    model = tiny()
    imgs, noise = torch.randn(4, 3, 32, 32), torch.rand(4, 16)
    compiled = torch.compile(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref, ref_grads = loss_and_grads(model, imgs, noise, return_pred=False)
        out, grads = loss_and_grads(compiled, imgs, noise, return_pred=False)
    grads = {name.removeprefix("_orig_mod."): grad for name, grad in grads.items()}
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-2, atol=0)
    assert grads.keys() == ref_grads.keys()
    for name, grad in ref_grads.items():  # bf16 rounding differs between fused and unfused ops
        cosine = torch.nn.functional.cosine_similarity(grads[name].flatten(), grad.flatten(), dim=0)
        assert cosine > 0.99, name


def test_embedding_only_the_kept_patches_equals_embedding_all_then_masking():
    model = tiny(img_size=(32, 48))
    imgs, noise = torch.randn(2, 3, 32, 48), torch.rand(2, 24)
    embed = model.patch_embed
    torch.testing.assert_close(embed.embed_pixels(embed.pixels(imgs)), embed(imgs), atol=1e-5, rtol=1e-5)

    latent, mask, ids_restore = model.forward_encoder(imgs, 0.75, noise)
    x, cls = model.embed(imgs)  # the reference route: all patches, then masking
    kept, ref_mask, ref_restore = random_masking(x, 0.75, noise)
    ref = torch.cat([cls, kept], dim=1)
    for block in model.blocks:
        ref = block(ref)
    assert torch.equal(mask, ref_mask) and torch.equal(ids_restore, ref_restore)
    torch.testing.assert_close(latent, model.norm(ref), atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_training_step_never_waits_for_the_gpu():
    from mae.benchmarking.step import TrainStep, shared_optimizer

    device = torch.device("cuda")
    model = tiny().to(device)
    step = TrainStep(model, shared_optimizer([model]), device, "bf16")
    imgs, noise = torch.randn(4, 3, 32, 32, device=device), torch.rand(4, 16, device=device)
    step(imgs, noise, 0.75)  # warm-up: lazy optimizer state
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(imgs, noise, 0.75)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("amx, limit", [(True, 400), (False, 785)])
def test_the_bf16_attention_crossover_follows_the_cpu(monkeypatch, amx, limit):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert plain_bf16_max_tokens() == limit
