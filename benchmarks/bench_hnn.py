"""Hamiltonian neural network vs a plain MLP vector field on mass-spring: energy MSE along rollouts.

Part 1 reproduces the protocol of Greydanus, Dzamba & Yosinski (2019), "Hamiltonian Neural Networks",
mass-spring task: H = q² + p² (our mass_spring preset k=2, m=0.5 is exactly that), 50 trajectories of
30 points on t ∈ [0, 3] from radii uniform on [0.1, 1], Gaussian noise σ = 0.05 on the states,
the exact time derivatives as targets, the first 25 trajectories for training and the last 25 for
testing; both models are tanh MLPs with two hidden layers of 200 units trained by full-batch Adam
(lr 1e-3, 2000 steps). The HNN outputs a scalar H(q, p) (general, not separable, as in the paper)
and its field is (∂H/∂p, −∂H/∂q); the baseline outputs the field directly. Energy MSE: from each
test trajectory's clean initial state, integrate the learned field with dopri5 (rtol 1e-9) over the
span T and average (H_true(x_model(t)) − H_true(x_true(t)))² over the 30·T/3 time points and the 25
trajectories. The paper's Table 1 reports 3.84e-4 (HNN) against 1.71e-1 (baseline); its integration
span is not restated here, so we report T = 3 (the data span) and T = 20.

Part 2 is our own data protocol: a `dynlab simulate` mass_spring store (leapfrog dt = 0.01, saved every
0.1, radii in [0.1, 1]), learners `hnn` (separable H, leapfrog) and `neural_ode` (MLP field, rk4) trained
by `dynlab train` on one-step windows, then free rollouts of 200 saved steps (t = 20) from the test
members' states: energy MSE with the true H.

The HNN paper's pendulum is H = 2(1 − cos q) + p²; our pendulum preset (m=0.5, g=3, l=1) is
H = 1.5(1 − cos q) + p², so pendulum numbers would not be comparable and are not reproduced here.

Run: PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_hnn.py [--steps 2000] [--seeds 3] [--train-steps 600]
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dynlab.models.hnn import GeneralHamiltonian, fit_derivatives
from dynlab.models.neural_ode import MLPVectorField
from simulators import make_system

PUBLISHED = {"hnn": 3.84e-4, "mlp": 1.71e-1}


class FieldModel(nn.Module):
    """The baseline: an MLP that outputs (q̇, ṗ) directly."""

    def __init__(self, hidden):
        super().__init__()
        self.field = MLPVectorField(2, hidden, "tanh", out_scale=1.0)

    def vector_field(self, x):
        return self.field(None, x)


def hnn_paper_data(seed: int = 0, n_traj: int = 50, n_points: int = 30, t_end: float = 3.0, noise: float = 0.05):
    """Trajectories of H = q² + p² (exact), noisy states, exact derivatives."""
    spring = make_system("mass_spring", k=2.0, m=0.5)
    g = torch.Generator().manual_seed(seed)
    radius = 0.1 + 0.9 * torch.rand(n_traj, 1, generator=g, dtype=torch.float64)
    direction = torch.randn(n_traj, 2, generator=g, dtype=torch.float64)
    x0 = radius * direction / direction.norm(dim=-1, keepdim=True)
    t = torch.linspace(0.0, t_end, n_points, dtype=torch.float64)
    clean = spring.exact_solution(x0, t).transpose(0, 1)  # (n_traj, T, 2)
    dxdt = spring.vector_field(0.0, clean)
    noisy = clean + noise * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    return spring, clean, noisy, dxdt, t


def energy_mse(model, spring, x0: torch.Tensor, span: float, points_per_unit: float = 10.0) -> float:
    import torchdiffeq

    n = int(round(span * points_per_unit))
    t = torch.linspace(0.0, span, n, dtype=torch.float64)
    with torch.no_grad():
        true = spring.exact_solution(x0, t)  # (T, N, 2)
    pred = torchdiffeq.odeint(lambda _t, x: model.vector_field(x).detach(), x0, t, method="dopri5", rtol=1e-9,
                              atol=1e-11)
    h = lambda x: x.square().sum(-1)  # noqa: E731  H = q² + p²
    return float((h(pred) - h(true)).square().mean())


def part1(steps: int, hidden=(200, 200), seed: int = 0) -> dict:
    spring, clean, noisy, dxdt, t = hnn_paper_data(seed)
    tr, te = slice(0, 25), slice(25, 50)
    x_train, y_train = noisy[tr].reshape(-1, 2), dxdt[tr].reshape(-1, 2)
    x_test, y_test = noisy[te].reshape(-1, 2), dxdt[te].reshape(-1, 2)
    out = {}
    for name, model in (("hnn", GeneralHamiltonian(1, hidden, "tanh")), ("mlp", FieldModel(hidden))):
        torch.manual_seed(seed)
        for p in model.parameters():  # a fresh draw per model
            nn.init.normal_(p, std=p.shape[-1] ** -0.5) if p.ndim == 2 else nn.init.zeros_(p)
        model = model.double()
        start = time.perf_counter()
        losses = fit_derivatives(model, x_train, y_train, steps=steps, lr=1e-3, seed=seed)
        seconds = time.perf_counter() - start
        test = float((model.vector_field(x_test) - y_test).detach().square().mean())
        x0 = clean[te, 0]
        out[name] = {"train": losses[-1], "test": test, "energy_mse_T3": energy_mse(model, spring, x0, 3.0),
                     "energy_mse_T20": energy_mse(model, spring, x0, 20.0), "seconds": seconds}
    return out


def part2(steps: int, workdir: Path) -> dict:
    from dynlab.config import compose
    from dynlab.pipeline.simulate import simulate
    from dynlab.pipeline.train import train
    import dynlab

    store = workdir / "spring.zarr"
    simulate(compose("simulate", ["system=mass_spring", "ensemble.members=40", "time.t_end=30", f"out={store}",
                                  "progress=false"]), log=lambda m: None)
    ds = dynlab.open_dataset(store)
    spring = make_system("mass_spring")
    results = {}
    for learner, extra in (("hnn", ["++learner.hidden=[64,64]"]), ("neural_ode", ["++learner.hidden=[64,64]"])):
        run_dir = workdir / f"run_{learner}"
        cfg = compose("train", [f"data.store={store}", f"run_dir={run_dir}", f"learner={learner}", *extra,
                                "data.context=2", "data.stride=2", f"train.steps={steps}", "train.batch_size=32",
                                "train.val_every=100000", "train.val_windows=32", "train.warmup=20",
                                "train.lr=3e-3", "progress=false", "train.dtype=float64", "threads=1"])
        start = time.perf_counter()
        train(cfg, log=lambda m: None)
        seconds = time.perf_counter() - start
        import json

        split = json.loads((run_dir / "split.json").read_text())
        em = dynlab.load_emulator(run_dir)
        codec = em.codec  # the training order of the variables (q, p, H in the store's order)
        qp = [codec.names.index("q"), codec.names.index("p")]
        test = torch.as_tensor(codec.encode(ds))[split["test"]]  # (M, T, 3)
        with torch.no_grad():
            pred = em.rollout(test[:, :2], 200)
        pred_qp, true_qp = pred[..., qp], test[:, 2:202][..., qp]
        h_pred, h_true = spring.energy(pred_qp), spring.energy(true_qp)
        results[learner] = {"energy_mse": float((h_pred - h_true).square().mean()),
                            "state_mse": float((pred_qp - true_qp).square().mean()),
                            "energy_drift_end": float((h_pred[:, -1] - h_true[:, -1]).abs().mean()),
                            "train_seconds": seconds, "test_members": len(split["test"])}
    return results


def report_part1(args) -> None:
    print("# Part 1: HNN paper protocol, mass-spring H = q^2 + p^2 (25 train / 25 test trajectories)")
    rows = {"hnn": [], "mlp": []}
    for seed in range(args.seeds):
        res = part1(args.steps, seed=seed)
        for k in rows:
            rows[k].append(res[k])
        print(f"seed {seed}: " + "; ".join(f"{k}: test {v['test']:.3g}, energy MSE T=3 {v['energy_mse_T3']:.3g}, "
                                           f"T=20 {v['energy_mse_T20']:.3g} ({v['seconds']:.0f} s)"
                                           for k, v in res.items()), flush=True)
    print("| model | train loss | test loss | energy MSE (T=3) | energy MSE (T=20) | published energy MSE |")
    print("|---|---|---|---|---|---|")
    for k, label in (("mlp", "baseline MLP field"), ("hnn", "HNN")):
        def stat(key):
            v = np.array([r[key] for r in rows[k]])
            return f"{np.mean(v):.3g} ± {np.std(v) / math.sqrt(len(v)):.2g}"
        print(f"| {label} | {stat('train')} | {stat('test')} | {stat('energy_mse_T3')} | {stat('energy_mse_T20')} "
              f"| {PUBLISHED[k]:.3g} |")
    print(f"(mean ± standard error over {args.seeds} seeds of data and initialisation)", flush=True)


def report_part2(args) -> None:
    print("\n# Part 2: our data protocol (dynlab simulate mass_spring, dynlab train one-step, 200-step rollouts)")
    with tempfile.TemporaryDirectory() as tmp:
        res = part2(args.train_steps, Path(tmp))
    print("| learner | energy MSE (t ≤ 20) | state MSE | mean |ΔH| at t = 20 | train wall time |")
    print("|---|---|---|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v['energy_mse']:.3g} | {v['state_mse']:.3g} | {v['energy_drift_end']:.3g} | "
              f"{v['train_seconds']:.0f} s ({args.train_steps} steps) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="Adam steps of part 1 (the paper: 2000)")
    ap.add_argument("--train-steps", type=int, default=600, help="dynlab train steps of part 2 (0: skip part 2)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of part 1 (0: skip part 1)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.seeds > 0:
        report_part1(args)
    if args.train_steps > 0:
        report_part2(args)
    print("Pendulum: the HNN paper's H = 2(1 - cos q) + p^2 differs from our preset 1.5(1 - cos q) + p^2; "
          "not compared.")


if __name__ == "__main__":
    main()
