"""Float32 linear layers through oneDNN compute what torch's default path does, and the
backend setting (blas, onednn, auto with its cached probe) is the one that runs."""

import json

import pytest
import torch

import mae
from helpers import TINY
from mae.models import linear as backend
from mae.models.linear import Linear, onednn_linear, set_matmul_backend

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs a torch build with oneDNN"),
]


@pytest.fixture(autouse=True)
def restore_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield
    set_matmul_backend("auto")


def counted(monkeypatch):
    """Count the forward calls of the oneDNN op (its backward runs with grad mode off)."""
    calls = []
    real = backend.onednn_linear

    def counting(x, weight, bias):
        if torch.is_grad_enabled():
            calls.append(tuple(x.shape))
        return real(x, weight, bias)

    monkeypatch.setattr(backend, "onednn_linear", counting)
    return calls


def step(model, imgs, noise, forward=None):
    model.zero_grad(set_to_none=True)
    out = (forward or model)(imgs, 0.75, noise, return_pred=True)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_onednn_op_equals_f_linear_forward_and_gradients():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 24, generator=gen, requires_grad=True)
    w = torch.randn(40, 24, generator=gen, requires_grad=True)
    b = torch.randn(40, generator=gen, requires_grad=True)
    grad = torch.randn(3, 5, 40, generator=gen)
    results = []
    for f in (torch.nn.functional.linear, onednn_linear):
        y = f(x, w, b)
        results.append([y, *torch.autograd.grad(y, (x, w, b), grad)])
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # fake kernel, autograd registration and schema, as torch.compile relies on them
    torch.library.opcheck(onednn_linear, (x, w, b))
    torch.library.opcheck(onednn_linear, (x, w, None))


def test_model_on_onednn_equals_the_default_path(monkeypatch):
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    imgs, noise = torch.randn(3, 3, 32, 32), torch.rand(3, 16)
    set_matmul_backend("blas")
    calls = counted(monkeypatch)
    ref, ref_grads = step(model, imgs, noise)
    assert calls == []
    set_matmul_backend("onednn")
    out, grads = step(model, imgs, noise)
    # every linear layer: 2 blocks x 4 + decoder 1 x 4 + patch embedding, decoder embedding and head
    assert len(calls) == 15
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.pred, ref.pred, atol=1e-5, rtol=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_autocast_and_other_dtypes_keep_the_default_path(monkeypatch):
    set_matmul_backend("onednn")
    calls = counted(monkeypatch)
    layer = Linear(8, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 8)).dtype == torch.bfloat16
    layer.double()(torch.randn(2, 8, dtype=torch.float64))
    assert calls == []
    layer.float()(torch.randn(2, 8))
    assert len(calls) == 1


def test_auto_probes_once_and_keeps_the_verdict_on_disk(monkeypatch, tmp_path):
    probes = []
    monkeypatch.setattr(backend, "probe_matmul_backend", lambda: probes.append(1) or "onednn")
    set_matmul_backend("auto")
    assert backend.matmul_backend() == "onednn" and backend.matmul_backend() == "onednn"
    assert len(probes) == 1
    verdicts = json.loads((tmp_path / "cache" / "mae" / "matmul_backend.json").read_text())
    assert list(verdicts.values()) == ["onednn"] and "1 threads" in next(iter(verdicts))
    set_matmul_backend("auto")  # another process on this machine: read, not measured
    assert backend.matmul_backend() == "onednn" and len(probes) == 1
    set_matmul_backend("blas")  # an explicit choice wins over the verdict
    assert backend.matmul_backend() == "blas"


def test_the_probe_returns_a_backend():
    assert backend.probe_matmul_backend(rows=16, width=8, rounds=1) in ("blas", "onednn")


def test_bad_backend_name_is_refused():
    with pytest.raises(ValueError, match="--matmul-backend must be one of auto, blas, onednn"):
        set_matmul_backend("mkl")


@pytest.mark.slow
def test_compiled_model_on_onednn_equals_eager():
    torch.manual_seed(0)
    model = mae.create_model("mae_vit_tiny_patch16", **TINY)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    set_matmul_backend("onednn")
    ref, ref_grads = step(model, imgs, noise)
    out, grads = step(model, imgs, noise, forward=torch.compile(model, fullgraph=True))
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-6, rtol=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)
