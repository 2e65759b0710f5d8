"""mae: masked-autoencoder pretraining of Vision Transformers (He et al., 2021).

    import mae
    model = mae.create_model("mae_vit_base_patch16", norm_pix_loss=True)
    out = model(imgs, mask_ratio=0.75)        # out.loss, out.mask, out.ids_restore
    out = model(imgs, return_pred=True)       # also out.pred, every patch predicted
    feats = model.forward_features(imgs)      # encoder only, no masking
    model = mae.load_model("runs/demo")       # ours, official .pth, or Hugging Face

The names below are imported on first use: `import mae` alone does not load torch.
"""

from .util import threads  # noqa: F401  first: sets OpenMP's wait policy before torch loads it
from .util.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "MAEOutput": ".models",
    "MaskedAutoencoder": ".models",
    "VisionTransformer": ".models",
    "create_model": ".models",
    "export_model": ".weights.export",
    "load_model": ".weights.load",
    "model_names": ".models",
    "reconstruct": ".viz",
    "save_model": ".weights.format",
    "visualize": ".viz",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
