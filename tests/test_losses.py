"""Losses: one-step and rollout MSE against hand computations, causal weights, curriculum."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dynlab.emulators.base import AbstractEmulator
from dynlab.errors import ConfigError
from dynlab.train import (CausalWeighting, HorizonCurriculum, OneStepObjective, RolloutObjective, build_objective,
                          causal_weights, one_step_mse, rollout_step_losses)


class Scale(AbstractEmulator):
    """x̂_{t+1} = a ⊙ x_t: rollouts have the closed form a^{h+1} x_{C-1}."""

    def __init__(self, a):
        super().__init__(len(a))
        self.a = nn.Parameter(torch.as_tensor(a, dtype=torch.float64))

    def forward(self, x, forcing=None):
        return self.a * x

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        return self.a * x_t, None


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 7, 2, generator=g, dtype=torch.float64)


def test_one_step_mse_by_hand(batch):
    em = Scale([0.5, 2.0])
    scale = torch.tensor([1.0, 4.0], dtype=torch.float64)
    want = (((0.5 * batch[:, :-1, 0] - batch[:, 1:, 0]) / 1.0) ** 2 +
            ((2.0 * batch[:, :-1, 1] - batch[:, 1:, 1]) / 4.0) ** 2).sum() / (3 * 6 * 2)
    torch.testing.assert_close(one_step_mse(em, batch, scale=scale), want)
    # burn-in drops the first two predictions
    want2 = ((em(batch)[:, 2:-1] - batch[:, 3:]) / scale).square().mean()
    torch.testing.assert_close(one_step_mse(em, batch, scale=scale, burn_in=2), want2)
    with pytest.raises(ConfigError, match="burn_in=6 leaves no step"):
        one_step_mse(em, batch, burn_in=6)


def test_rollout_step_losses_by_hand(batch):
    em = Scale([0.9, -1.1])
    C, H = 3, 4
    per = rollout_step_losses(em, batch, C, H)
    assert per.shape == (H,)
    last = batch[:, C - 1]
    for h in range(H):
        pred = em.a ** (h + 1) * last
        torch.testing.assert_close(per[h], (pred - batch[:, C + h]).square().mean())
    per_b = rollout_step_losses(em, batch, C, H, reduce_batch=False)
    assert per_b.shape == (3, H)
    torch.testing.assert_close(per_b.mean(0), per)
    with pytest.raises(ConfigError, match="does not fit windows of 7 steps"):
        rollout_step_losses(em, batch, 4, 4)


def test_causal_weights_formula():
    L = torch.tensor([1.0, 2.0, 3.0, 0.5], dtype=torch.float64)
    w = causal_weights(L, 0.5)
    want = torch.exp(-0.5 * torch.tensor([0.0, 1.0, 3.0, 6.0], dtype=torch.float64))
    torch.testing.assert_close(w, want)
    assert causal_weights(L, 0.0).eq(1).all()
    batched = causal_weights(torch.stack([L, 2 * L]), 0.5)
    torch.testing.assert_close(batched[1], torch.exp(-0.5 * torch.tensor([0.0, 2.0, 6.0, 12.0], dtype=torch.float64)))


def test_causal_weights_are_held_constant_for_the_gradient():
    """d/dθ mean_i w_i L_i(θ) = mean_i w_i dL_i/dθ: no gradient flows through the weights."""
    theta = torch.tensor([0.3, 1.2, 0.7], dtype=torch.float64, requires_grad=True)
    causal = CausalWeighting(lambda t: t.square(), eps=[2.0])
    loss = causal(theta)
    loss.backward()
    L = theta.detach().square()
    w = torch.exp(-2.0 * torch.tensor([0.0, L[0], L[0] + L[1]], dtype=torch.float64))
    torch.testing.assert_close(loss.detach(), (w * L).mean())
    torch.testing.assert_close(theta.grad, w * 2 * theta.detach() / 3)
    assert not causal.last_weights.requires_grad
    # with gradients through w the first entry would pick up terms from the later chunks
    theta2 = theta.detach().clone().requires_grad_(True)
    L2 = theta2.square()
    before = torch.cumsum(L2, 0) - L2
    (torch.exp(-2.0 * before) * L2).mean().backward()
    assert not torch.allclose(theta2.grad, theta.grad)


def test_causal_stage_ends_when_all_weights_exceed_tol():
    causal = CausalWeighting(None, eps=[1.0, 10.0, 100.0], tol=0.99)
    small = torch.full((5,), 1e-5, dtype=torch.float64)  # 100 · 4e-5 = 4e-3 → min w ≈ 0.996
    big = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    causal.weighted(big)
    assert causal.update() is False and causal.stage == 0 and causal.stage_steps == 1
    causal.weighted(small)
    assert causal.update() is True and causal.stage == 1 and causal.epsilon == 10.0
    causal.weighted(small)
    assert causal.update() is True and causal.stage == 2
    causal.weighted(small)  # 100 · 4e-5 → min w = e^{-0.004} > 0.99
    assert causal.update() is True and causal.exhausted
    assert causal.epsilon == 100.0  # keeps the last ε once exhausted
    assert causal.update() is False
    causal.reset()
    assert causal.stage == 0 and not causal.exhausted


def test_causal_stage_ends_at_the_step_cap():
    causal = CausalWeighting(None, eps=[1.0, 2.0], max_stage_steps=3)
    big = torch.tensor([5.0, 5.0], dtype=torch.float64)
    ended = []
    for _ in range(7):
        causal.weighted(big)
        ended.append(causal.update())
    assert ended == [False, False, True, False, False, True, False]
    assert causal.exhausted
    state = causal.state_dict()
    other = CausalWeighting(None, eps=[1.0, 2.0], max_stage_steps=3)
    other.load_state_dict(state)
    assert other.stage == 2 and other.exhausted


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": [1.0, 0.5]}, "must increase"),
    ({"eps": []}, "non-empty list"),
    ({"eps": [1.0], "tol": 1.5}, r"tol must be in \(0, 1\)"),
    ({"eps": [1.0], "max_stage_steps": 0}, "max_stage_steps must be a positive integer"),
])
def test_causal_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CausalWeighting(None, **kwargs)


def test_curriculum_grows_on_threshold_and_on_plateau():
    c = HorizonCurriculum(start=2, max=6, grow=2, threshold=0.1, patience=2, min_delta=0.01)
    assert c.update(0.5) is False and c.horizon == 2
    assert c.update(0.05) is True and c.horizon == 4  # below the threshold
    assert c.update(0.8) is False  # first value at H=4 sets the best
    assert c.update(0.799) is False  # < 1 % better: stale 1
    assert c.update(0.9) is True and c.horizon == 6  # stale 2 = patience: plateau
    assert c.update(0.0) is False and c.at_max
    blocked = HorizonCurriculum(start=1, max=3, threshold=1.0)
    assert blocked.update(0.1, allowed=False) is False and blocked.horizon == 1
    with pytest.raises(ConfigError, match=r"loss.horizon.max=1 must be >= loss.horizon.start=2"):
        HorizonCurriculum(start=2, max=1)


def test_rollout_objective_phases_and_causal_restart(batch):
    em = Scale([0.95, 1.05])
    obj = build_objective({"name": "causal_rollout", "one_step_steps": 2,
                           "horizon": {"start": 1, "max": 3, "grow": 2, "threshold": 10.0},
                           "causal": {"eps": [1e-3, 1e-2], "max_stage_steps": 1}}, context=3)
    assert isinstance(obj, RolloutObjective) and obj.max_horizon == 3
    loss, logs = obj.loss(em, batch, None, step=0)  # warm start: one-step only
    torch.testing.assert_close(loss, one_step_mse(em, batch))
    assert obj.on_validation({"step": 1, "val/rollout_steps": [0.1, 0.2, 0.3]}) == []
    loss, logs = obj.loss(em, batch, None, step=2)
    assert "loss/rollout" in logs and "causal/min_weight" in logs
    # the horizon may not grow before the ε schedule is exhausted ...
    assert obj.on_validation({"step": 3, "val/rollout_steps": [0.1, 0.2, 0.3]}) == []
    assert obj.horizon == 1
    obj.after_step(2)
    obj.after_step(3)
    assert obj.causal.exhausted
    # ... then it grows and the schedule restarts
    assert obj.on_validation({"step": 4, "val/rollout_steps": [0.1, 0.2, 0.3]}) == ["rollout horizon 1 -> 3"]
    assert obj.horizon == 3 and obj.causal.stage == 0
    _, logs = obj.loss(em, batch, None, step=5)
    per = rollout_step_losses(em, batch, 3, 3)
    torch.testing.assert_close(logs["loss/rollout"], per.mean())
    state = obj.state_dict()
    fresh = build_objective({"name": "causal_rollout", "horizon": {"start": 1, "max": 3, "grow": 2},
                             "causal": {"eps": [1e-3, 1e-2]}}, context=3)
    fresh.load_state_dict(state)
    assert fresh.horizon == 3


def test_one_step_objective_and_registry(batch):
    obj = build_objective({"name": "one_step", "burn_in": 1}, context=4)
    assert isinstance(obj, OneStepObjective) and obj.max_horizon == 0
    em = Scale([1.0, 1.0])
    loss, _ = obj.loss(em, batch, None, 0)
    torch.testing.assert_close(loss, one_step_mse(em, batch, burn_in=1))
    with pytest.raises(ConfigError, match="unknown loss 'nope'; available: causal_rollout, one_step, rollout"):
        build_objective({"name": "nope"}, 4)
    with pytest.raises(ConfigError, match=r"unknown keys \['horizn'\]"):
        build_objective({"name": "rollout", "horizn": {}}, 4)
    with pytest.raises(ConfigError, match="needs a causal section"):
        build_objective({"name": "causal_rollout", "horizon": {"max": 2}}, 4)


def test_validation_sums_add_up(batch):
    obj = build_objective({"name": "rollout", "horizon": {"start": 1, "max": 2}}, context=3)
    em = Scale([0.9, 1.1])
    sums = obj.validation_sums(em, batch, None, data_horizon=4)
    assert float(sums["count"]) == 3
    torch.testing.assert_close(sums["one_step"] / 3, one_step_mse(em, batch))
    torch.testing.assert_close(sums["rollout"] / 3, rollout_step_losses(em, batch, 3, 4))
    assert math.isfinite(float(sums["one_step"]))
