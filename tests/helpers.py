"""What several test files share: the tiny architecture, the comparison of trained weights, and a
command's config class."""

import torch

from mae.cli import available_commands

# a 2-block ViT on 32 x 32 images in 8 x 8 patches: trains in milliseconds on a CPU
TINY = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)


def assert_same_trained_weights(a: dict, b: dict) -> None:
    """Two state dicts trained along the same path agree within float tolerance.

    The key bias gets no true gradient (softmax ignores a shift shared by all keys), so Adam
    turns rounding noise into steps of up to lr: only the q and v thirds of qkv.bias must agree.
    """
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if key.endswith("attn.qkv.bias"):
            third = len(x) // 3
            x, y = torch.cat([x[:third], x[2 * third:]]), torch.cat([y[:third], y[2 * third:]])
        assert torch.allclose(x, y, atol=1e-5, rtol=1e-4), key


def hf_pretraining_model(config: dict, **fields):
    """A Hugging Face ViTMAEForPreTraining of our config's architecture (fields: config.json overrides)."""
    import transformers

    from mae.weights import layouts as interop

    hf = {k: v for k, v in interop.hf_config_from_ours(config).items() if k not in ("model_type", "architectures")}
    return transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**hf, **fields})).eval()


def config_class(command: str) -> type:
    """The config dataclass of a `mae` command's module (PretrainConfig for pretrain ...)."""
    module = __import__(available_commands()[command], fromlist=["run"])
    return next(v for k, v in vars(module).items() if k.endswith("Config") and isinstance(v, type))
