"""LARS against its definition, on steps computed by hand."""

import pytest
import torch

from mae.engine.optim.lars import LARS


def test_matrix_step_uses_weight_decay_and_trust_ratio():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # |w| = 5
    opt = LARS([w], lr=0.5, weight_decay=0.1, momentum=0.9, trust_coefficient=0.001)
    w.grad = torch.tensor([[0.6, 0.8]])
    opt.step()
    # u = g + 0.1 w = [0.9, 1.2], |u| = 1.5, q = 0.001 * 5 / 1.5 = 1/300
    # mu = q u = [0.003, 0.004]; w = w - 0.5 mu
    torch.testing.assert_close(w.data, torch.tensor([[2.9985, 3.998]]), atol=1e-7, rtol=0)
    # second step, same gradient: u = [0.6, 0.8] + 0.1 [2.9985, 3.998] = [0.89985, 1.1998]
    u = [0.6 + 0.1 * 2.9985, 0.8 + 0.1 * 3.998]
    norm_w, norm_u = (2.9985**2 + 3.998**2) ** 0.5, (u[0] ** 2 + u[1] ** 2) ** 0.5
    q = 0.001 * norm_w / norm_u
    mu = [0.9 * 0.003 + q * u[0], 0.9 * 0.004 + q * u[1]]
    w.grad = torch.tensor([[0.6, 0.8]])
    opt.step()
    expected = torch.tensor([[2.9985 - 0.5 * mu[0], 3.998 - 0.5 * mu[1]]])
    torch.testing.assert_close(w.data, expected, atol=1e-7, rtol=0)


def test_vectors_get_plain_momentum_sgd_without_decay_or_trust():
    b = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = LARS([b], lr=0.1, weight_decay=0.5)
    for _ in range(2):
        b.grad = torch.tensor([0.5, 0.25])
        opt.step()
    # mu1 = g, mu2 = 0.9 g + g = 1.9 g; b = b - 0.1 (g + 1.9 g) = b - 0.29 g
    torch.testing.assert_close(b.data, torch.tensor([1.0 - 0.145, -2.0 - 0.0725]), atol=1e-7, rtol=0)


def test_zero_weights_or_zero_update_skip_the_trust_ratio():
    w = torch.nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=1.0, weight_decay=0.1)
    w.grad = torch.ones(2, 2)
    opt.step()
    assert torch.equal(w.data, -torch.ones(2, 2))  # q = 1 when |w| = 0
    v = torch.nn.Parameter(torch.ones(2, 2))
    opt = LARS([v], lr=1.0, weight_decay=0.0)
    v.grad = torch.zeros(2, 2)
    opt.step()
    assert torch.equal(v.data, torch.ones(2, 2))  # |u| = 0: nothing moves, no NaN


def test_parameters_without_gradients_are_skipped_and_closure_returns_the_loss():
    a, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2, 2))
    opt = LARS([a, b], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (a * 3).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 12.0
    assert torch.equal(b.data, torch.ones(2, 2)) and not torch.equal(a.data, torch.ones(2, 2))


def test_state_round_trips_and_bad_values_are_refused():
    w = torch.nn.Parameter(torch.randn(3, 3))
    opt = LARS([w], lr=0.1)
    w.grad = torch.randn(3, 3)
    opt.step()
    again = LARS([w], lr=0.1)
    again.load_state_dict(opt.state_dict())
    assert torch.equal(again.state[w]["mu"], opt.state[w]["mu"])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        LARS([w], lr=-1.0)
