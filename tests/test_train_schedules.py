"""Training schedules: the horizon curriculum trains a validation period at each horizon before it
grows, and causal weighting with ε scaled by the initial loss starts below 0.5 and marches to the
stop rule on a small rollout problem."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dynlab.emulators.base import AbstractEmulator
from dynlab.errors import ConfigError
from dynlab.train import CausalWeighting, HorizonCurriculum
from dynlab.train.losses import RolloutObjective, rollout_step_losses


def test_curriculum_trains_one_validation_period_at_the_first_horizon():
    """The quickstart's case: the warm start ends at a validation, whose loss at H=2 is already below
    the threshold; H=2 must still be trained until the next validation."""
    c = HorizonCurriculum(start=2, max=6, grow=2, threshold=0.1)
    assert c.update(0.01) is False and c.horizon == 2  # opens H=2's period; no step at H=2 yet
    assert c.update(0.01) is True and c.horizon == 4  # a period later: learnt, grows
    assert c.update(0.01) is True and c.horizon == 6  # H=4 was trained since the validation that set it
    restored = HorizonCurriculum(start=2, max=6, grow=2, threshold=0.1)
    restored.load_state_dict({"horizon": 2, "best": None, "stale": 0})  # a checkpoint from before "opened"
    assert restored.update(0.01) is False and restored.update(0.01) is True


def test_rollout_objective_does_not_grow_at_the_end_of_the_warm_start():
    obj = RolloutObjective(2, HorizonCurriculum(start=2, max=4, grow=2, threshold=0.01, patience=2),
                           one_step_steps=300)
    val = {"val/rollout_steps": [0.001, 0.002, 0.003, 0.004]}
    assert obj.on_validation({"step": 250, **val}) == []  # in the warm start: ignored
    assert obj.on_validation({"step": 300, **val}) == [] and obj.horizon == 2  # warm start just ended
    assert obj.on_validation({"step": 350, **val}) == ["rollout horizon 2 -> 4"]


class LinearMap(AbstractEmulator):
    """x_{t+1} = W x_t with W learnt (starts at the identity)."""

    def __init__(self, n: int):
        super().__init__(n)
        self.W = nn.Parameter(torch.eye(n, dtype=torch.float64))

    def forward(self, x, forcing=None):
        return x @ self.W.T

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        return x_t @ self.W.T, None


def test_initial_loss_scale_starts_below_half_and_marches_to_the_stop_rule():
    torch.manual_seed(0)
    theta = 0.3
    rot = torch.tensor([[torch.cos(torch.tensor(theta)), -torch.sin(torch.tensor(theta))],
                        [torch.sin(torch.tensor(theta)), torch.cos(torch.tensor(theta))]], dtype=torch.float64)
    x0 = torch.randn(16, 2, dtype=torch.float64)
    x = torch.stack([x0 @ torch.linalg.matrix_power(rot, k).T for k in range(10)], dim=1)  # (16, 10, 2)
    em = LinearMap(2)
    opt = torch.optim.Adam(em.parameters(), lr=0.02)
    causal = CausalWeighting(None, eps=[2.0], tol=0.99, eps_scale="initial_loss")
    absolute = CausalWeighting(None, eps=[2.0], tol=0.99)
    per = rollout_step_losses(em, x, 2, 8)
    absolute.weighted(per)
    min_w = []
    for step in range(400):
        per = rollout_step_losses(em, x, 2, 8)
        loss = causal.weighted(per)
        min_w.append(float(causal.last_weights.min()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if causal.update():
            break
    # ε·ΣL = 2 at the start: the last step's weight is exp(-2 (1 - L_last/ΣL)) < 0.5
    assert min_w[0] < 0.5
    print(f"{len(min_w)} steps: min weight {min_w[0]:.3f} -> {min_w[-1]:.4f}")
    assert causal.exhausted and min_w[-1] > 0.99 and len(min_w) < 400  # ended by the stop rule, not a cap
    assert causal.scale == pytest.approx(float(rollout_step_losses(LinearMap(2), x, 2, 8).detach().sum()))
    # the weights rise as the early steps are fitted
    assert min_w[len(min_w) // 2] > min_w[0]
    # absolute ε on the same losses: the paper's convention, not rescaled
    assert absolute.scale is None and absolute.effective_epsilon() == 2.0
    state = causal.state_dict()
    fresh = CausalWeighting(None, eps=[2.0], eps_scale="initial_loss")
    fresh.load_state_dict(state)
    assert fresh.scale == causal.scale and fresh.stage == causal.stage
    with pytest.raises(ConfigError, match=r"causal.eps_scale must be one of \['absolute', 'initial_loss'\]"):
        CausalWeighting(None, eps=[1.0], eps_scale="relative")
