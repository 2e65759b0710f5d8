"""Settings inferred from a state dict: depth, widths, patch and image size, read from the tensors' shapes."""

from ..models.pos_embed import grid_from_length
from ..models.zoo import CONFIGS
from ..util.sizes import to_2tuple


def _count_blocks(state: dict, prefix: str) -> int:
    indices = {int(k.split(".")[1]) for k in state if k.startswith(prefix + ".")}
    return max(indices) + 1 if indices else 0


class InferredSettingWarning(UserWarning):
    """A setting the checkpoint does not record was inferred; the warning names the override."""


def _table_img_size(positions: int, patch_size: int, img_size) -> list[int]:
    """The image size a position table of `positions` patches was saved at.

    A table alone tells only its length: a square grid is assumed, unless the size asked
    for (`img_size`) gives a grid of exactly that length.
    """
    if img_size is not None:
        rows, cols = to_2tuple(img_size)
        if (rows // patch_size) * (cols // patch_size) == positions:
            return [rows, cols]
    try:
        rows, cols = grid_from_length(positions)
    except ValueError:
        asked = f"; img_size={img_size} gives {(rows // patch_size) * (cols // patch_size)}" if img_size else ""
        raise ValueError(
            f"cannot infer the patch grid of a {positions}-position table (not a square){asked}; "
            "pass img_size=(height, width) of the grid the weights were saved at"
        ) from None
    return [rows * patch_size, cols * patch_size]


def infer_config(state: dict, args: dict | None = None, img_size=None) -> tuple[dict, dict]:
    """Constructor kwargs from official-layout weights (and the run's args, if any).

    Returns (config, guessed): `guessed` maps each setting that was not read but assumed
    to what was assumed and why (head counts of a size no named model has; norm-pix
    targets of a pretraining checkpoint that does not say).
    """
    args = args or {}
    guessed = {}
    embed_dim = state["cls_token"].shape[-1]
    proj = state["patch_embed.proj.weight"]  # [D, C, p, p]
    patch_size, in_chans = proj.shape[-1], proj.shape[1]
    depth = _count_blocks(state, "blocks")
    config = dict(
        patch_size=patch_size,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depth=depth,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
    )
    if isinstance(args.get("input_size"), int):
        config["img_size"] = args["input_size"]
    else:
        config["img_size"] = _table_img_size(state["pos_embed"].shape[1] - 1, patch_size, img_size)
    if "mask_ratio" in args:
        config["mask_ratio"] = float(args["mask_ratio"])
    if "norm_pix_loss" in args:
        config["norm_pix_loss"] = bool(args["norm_pix_loss"])
    elif "decoder_embed.weight" in state:
        config["norm_pix_loss"] = False
        guessed["norm_pix_loss"] = "False (the checkpoint does not say which targets it was trained on)"

    # Head counts are not in the weights: take them from the matching named model.
    named = args.get("model") if args.get("model") in CONFIGS else None
    for name, known in CONFIGS.items():
        if named is None and (known["embed_dim"], known["depth"], known["patch_size"]) == (
            embed_dim, depth, patch_size,
        ):
            named = name
    known = CONFIGS.get(named, {})
    config["num_heads"] = known.get("num_heads", max(1, embed_dim // 64))
    if not known:
        guessed["num_heads"] = (f"{config['num_heads']} (one per 64 channels: no named model is "
                                f"{embed_dim} wide and {depth} deep with {patch_size}-pixel patches)")
    if "decoder_embed.weight" in state:
        dec_dim = state["decoder_embed.weight"].shape[0]
        config.update(decoder_embed_dim=dec_dim, decoder_depth=_count_blocks(state, "decoder_blocks"))
        if known.get("decoder_embed_dim") == dec_dim:
            config["decoder_num_heads"] = known["decoder_num_heads"]
        else:
            config["decoder_num_heads"] = max(1, dec_dim // 32)
            guessed["decoder_num_heads"] = (f"{config['decoder_num_heads']} (one per 32 channels of the "
                                            f"{dec_dim}-wide decoder)")
    return config, guessed
