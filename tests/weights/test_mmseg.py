"""`mae convert --to mmseg` against mmsegmentation itself (skipped where it is not installed).

mmsegmentation imports mmcv.ops, compiled kernels that the CPU-only `mmcv-lite` lacks and the
MAE / ViT backbones never call: the test stands in an empty module for it.
"""

import copy
import sys
import types

import pytest
import torch

import mae
from helpers import TINY
from mae.weights.export import export_model

pytest.importorskip("mmengine")
pytest.importorskip("mmcv")
if "mmcv.ops" not in sys.modules:
    try:
        import mmcv.ops  # noqa: F401
    except (ImportError, ModuleNotFoundError):
        sys.modules["mmcv.ops"] = types.ModuleType("mmcv.ops")
        sys.modules["mmcv.ops"].__getattr__ = lambda name: None  # names imported, never called
backbones = pytest.importorskip("mmseg.models.backbones")

ARCH = dict(patch_size=TINY["patch_size"], embed_dims=TINY["embed_dim"], num_layers=TINY["depth"],
            num_heads=TINY["num_heads"], mlp_ratio=4, norm_cfg=dict(type="LN", eps=1e-6), final_norm=True)


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(0)
    return mae.create_model("mae_vit_tiny_patch16", **TINY).eval()


def load_into(backbone, path) -> None:
    """As mmseg does for `pretrained=`: init_cfg Pretrained, then init_weights."""
    backbone.init_cfg = dict(type="Pretrained", checkpoint=str(path))
    backbone.init_weights()
    backbone.eval()


def feature_map(model, imgs):
    """Our encoder's normed patch tokens as mmseg's backbones return them: [N, D, rows, cols]."""
    with torch.no_grad():
        tokens = model.forward_features(imgs)[:, 1:]  # [N, L, D]
    rows, cols = model.patch_embed.grid_for(imgs)
    return tokens.reshape(len(imgs), rows, cols, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("img_size", [None, 48])
def test_mmseg_mae_backbone_loads_every_encoder_key(tmp_path, pretrained, img_size, capsys):
    export = copy.deepcopy(pretrained)
    if img_size is not None:  # what --img-size does: tables resampled to the segmentation size
        export.set_img_size(img_size)
    size = export.config["img_size"]
    report = export_model(export, tmp_path / "seg.pth", "mmseg")
    assert "gamma_1/gamma_2 written as ones" in report.summary()
    written = torch.load(tmp_path / "seg.pth", weights_only=True)["state_dict"]

    backbone = backbones.MAE(img_size=tuple(size), init_values=0.1, **ARCH)  # 0.1: our ones must win
    own = backbone.state_dict()
    matched = set(own) & set(written)
    not_written = sorted(set(own) - matched)
    assert all(k.endswith(("relative_position_bias_table", "relative_position_index")) for k in not_written)
    unexpected = sorted(set(written) - matched)
    assert all(".attn.attn." in k for k in unexpected)  # VisionTransformer's spelling of the same tensors
    assert all(own[k].shape == written[k].shape for k in matched)

    load_into(backbone, tmp_path / "seg.pth")
    for key in matched:
        assert torch.equal(backbone.state_dict()[key], written[key]), key
    imgs = torch.randn(2, 3, *size)
    with torch.no_grad():
        (theirs,) = backbone(imgs)
    torch.testing.assert_close(theirs, feature_map(export, imgs), atol=1e-5, rtol=0)


def test_mmseg_vision_transformer_loads_the_same_file(tmp_path, pretrained):
    export_model(pretrained, tmp_path / "seg.pth", "mmseg")
    written = torch.load(tmp_path / "seg.pth", weights_only=True)["state_dict"]
    backbone = backbones.VisionTransformer(img_size=32, patch_bias=True, **ARCH)
    assert set(backbone.state_dict()) <= set(written)
    load_into(backbone, tmp_path / "seg.pth")
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        (theirs,) = backbone(imgs)
    torch.testing.assert_close(theirs, feature_map(pretrained, imgs), atol=1e-5, rtol=0)


def test_real_beit2mmseg_output_of_a_full_checkpoint_loads(pretrained):
    """mmsegmentation's own key converter (shipped in the package) on a full pretraining state dict."""
    import importlib.util
    from pathlib import Path

    import mmseg

    script = Path(mmseg.__file__).parent / ".mim" / "tools" / "model_converters" / "beit2mmseg.py"
    if not script.exists():
        pytest.skip("this mmsegmentation install does not ship tools/model_converters")
    spec = importlib.util.spec_from_file_location("beit2mmseg", script)
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    converted = dict(converter.convert_beit(pretrained.state_dict()))
    assert "mask_token" in converted and "layers.0.ln1.weight" in converted
    loaded = mae.load_model(converted, num_heads=4, decoder_num_heads=4, norm_pix_loss=False)
    imgs, noise = torch.randn(1, 3, 32, 32), torch.rand(1, 16)
    with torch.no_grad():
        assert torch.equal(loaded(imgs, noise=noise).pred, pretrained(imgs, noise=noise).pred)
