import math

import pytest
import torch

from mae.models.pos_embed import is_sincos, resample_pos_embed, sincos_2d


def formula(dim: int, rows: int, cols: int) -> torch.Tensor:
    """The closed form, element by element: first half encodes the column, second the row.

    Within each half: sin(pos * w_k) for k < dim/4, then cos(pos * w_k), w_k = 10000^(-k/(dim/4)).
    """
    quarter = dim // 4
    table = torch.zeros(1 + rows * cols, dim, dtype=torch.float64)
    for r in range(rows):
        for c in range(cols):
            vec = table[1 + r * cols + c]
            for k in range(quarter):
                w = 10000.0 ** (-k / quarter)
                vec[k] = math.sin(c * w)
                vec[quarter + k] = math.cos(c * w)
                vec[2 * quarter + k] = math.sin(r * w)
                vec[3 * quarter + k] = math.cos(r * w)
    return table


@pytest.mark.parametrize("dim,rows,cols", [(16, 3, 3), (32, 2, 5), (8, 4, 1)])
def test_sincos_table_matches_closed_form(dim, rows, cols):
    table = sincos_2d(dim, (rows, cols))
    assert table.shape == (1, 1 + rows * cols, dim)
    assert table.dtype == torch.float32
    expected = formula(dim, rows, cols).float()
    torch.testing.assert_close(table[0], expected, atol=0, rtol=0)
    assert torch.all(table[0, 0] == 0)  # the cls row


def test_sincos_width_must_divide_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(18, (2, 2))


def test_model_tables_are_frozen_sincos():
    import mae

    model = mae.create_model("mae_vit_tiny_patch16", img_size=(32, 48), patch_size=8)
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
    torch.testing.assert_close(model.pos_embed[0], formula(192, 4, 6).float(), atol=0, rtol=0)
    torch.testing.assert_close(model.decoder_pos_embed[0], formula(128, 4, 6).float(), atol=0, rtol=0)


@pytest.mark.parametrize("old,new", [((4, 4), (6, 6)), ((4, 6), (3, 2)), ((2, 2), (5, 7))])
def test_resampling_sincos_reproduces_the_new_table(old, new):
    table = sincos_2d(32, old)
    assert is_sincos(table, old)
    resampled = resample_pos_embed(table, old, new)
    torch.testing.assert_close(resampled, sincos_2d(32, new), atol=0, rtol=0)


def test_resampling_learned_table_is_2d():
    # A table that varies only along rows must still vary only along rows: a 1-D
    # resampling of the flattened sequence would smear rows into each other.
    old, new, dim = (4, 6), (8, 9), 8
    rows = torch.arange(old[0], dtype=torch.float32).repeat_interleave(old[1])
    cols = torch.arange(old[1], dtype=torch.float32).repeat(old[0])
    table = torch.zeros(1, 1 + old[0] * old[1], dim)
    table[0, 0] = 7.0  # cls row must survive untouched
    table[0, 1:, :4] = rows[:, None] * torch.arange(1, 5)
    table[0, 1:, 4:] = cols[:, None] * torch.arange(1, 5)
    assert not is_sincos(table, old)

    out = resample_pos_embed(table, old, new)
    assert out.shape == (1, 1 + new[0] * new[1], dim)
    assert torch.all(out[0, 0] == 7.0)
    grid = out[0, 1:].reshape(new[0], new[1], dim)
    row_part, col_part = grid[..., :4], grid[..., 4:]
    # row features constant along each row, column features constant down each column
    torch.testing.assert_close(row_part, row_part[:, :1].expand_as(row_part))
    torch.testing.assert_close(col_part, col_part[:1].expand_as(col_part))
    # and they span the old range in order (monotone in the resampled coordinate)
    assert torch.all(row_part[1:, 0, 0] >= row_part[:-1, 0, 0])
    assert row_part[-1, 0, 0] > row_part[0, 0, 0]


def test_resampling_to_same_grid_is_identity():
    table = torch.randn(1, 1 + 12, 8)
    assert resample_pos_embed(table, (3, 4), (3, 4)) is table


def test_resampling_checks_table_length():
    with pytest.raises(ValueError, match="prefix"):
        resample_pos_embed(torch.randn(1, 10, 8), (3, 4), (2, 2))
