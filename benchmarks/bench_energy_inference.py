"""Energy-based predictor: does thinking longer help? Error against inference steps K and best-of-N,
wall time per prediction, and the final energy as an uncertainty (Spearman with the error, OOD AUROC).

Data: Lorenz96 K=8 written by `dynlab simulate` (rk4, dt = 0.01, saved every 0.05, spin-up 2): F = 8 for
training and the in-distribution test members, F = 10 for out-of-distribution inputs. Learner
`energy_based` is trained by `dynlab train` on one-step windows (K drawn from [1, train_steps_max] per batch);
an `s4d` of the same width and depth is trained the same way as a reference, and persistence gives the scale.

Evaluation (held-out members, teacher-forced windows of ``--context`` steps, predictions scored from the
8th position on): the scaled one-step squared error (per feature, divided by the training data's variance,
averaged over features) of every prediction. Intervals: 95 % member-block bootstrap over test members
(dynlab.eval.stats.bootstrap). Spearman: rank correlation of a prediction's final energy with its error.
AUROC: how well the final energy separates F = 10 from F = 8 inputs (0.5 = chance), next to the AUROC of
a trivial detector (the distance of the input from the training mean).

Run: PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_energy_inference.py [--steps 400] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dynlab
from dynlab.config import compose
from dynlab.emulators import StateCodec
from dynlab.eval.stats import bootstrap
from dynlab.pipeline.simulate import simulate
from dynlab.pipeline.train import train


def make_store(folder: Path, F: float, members: int, t_end: float, seed: int) -> Path:
    out = folder / f"l96_F{F:g}.zarr"
    simulate(compose("simulate", ["system.K=8", f"system.F={F}", f"ensemble.members={members}",
                                  f"time.t_end={t_end}", "time.spinup=2", f"seed={seed}", f"out={out}",
                                  "progress=false"]), log=lambda m: None)
    return out


def windows(x: torch.Tensor, context: int, stride: int) -> tuple[torch.Tensor, np.ndarray]:
    """Windows ``(W, context + 1, D)`` of members ``x`` ``(M, T, D)`` and the member of each window."""
    out, member = [], []
    for m in range(x.shape[0]):
        for s in range(0, x.shape[1] - context - 1, stride):
            out.append(x[m, s:s + context + 1])
            member.append(m)
    return torch.stack(out), np.array(member)


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(score of a positive > score of a negative) (ties count one half): the Mann–Whitney AUC."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([negatives, positives]))
    n0, n1 = len(negatives), len(positives)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="optimiser steps of each learner")
    ap.add_argument("--members", type=int, default=24, help="F=8 members (train/val/test 0.6/0.15/0.25)")
    ap.add_argument("--t-end", type=float, default=12.0)
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--train-steps-max", type=int, default=8, help="largest K drawn in training")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra energy_based option, e.g. --set langevin_noise=0.05 (repeatable)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    burn = 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        store = make_store(tmp, 8.0, args.members, args.t_end, seed=0)
        ood_store = make_store(tmp, 10.0, 8, args.t_end, seed=1)
        print(f"data: {time.perf_counter() - t0:.0f} s")
        common = [f"data.store={store}", f"data.context={args.context}", "data.stride=4",
                  "data.split.train=0.6", "data.split.val=0.15", "data.split.test=0.25",
                  f"train.steps={args.steps}", "train.batch_size=16", "train.val_every=100000",
                  "train.val_windows=32", "train.warmup=20", "progress=false", f"device={args.device}", "threads=1"]
        learners = {"energy_based": ["learner=energy_based", "++learner.d_model=32", "++learner.n_layers=2",
                                     f"++learner.train_steps_max={args.train_steps_max}",
                                     *(f"++learner.{kv}" for kv in args.set)],
                    "s4d": ["learner=s4d", "learner.d_model=32", "learner.n_layers=2"]}
        models, cost = {}, {}
        for name, over in learners.items():
            run_dir = tmp / f"run_{name}"
            start = time.perf_counter()
            train(compose("train", [*common, *over, f"run_dir={run_dir}"]), log=lambda m: None)
            cost[name] = time.perf_counter() - start
            models[name] = dynlab.load_emulator(run_dir, device=args.device)
            split = json.loads((run_dir / "split.json").read_text())
            print(f"trained {name}: {args.steps} steps in {cost[name]:.0f} s "
                  f"({1000 * cost[name] / args.steps:.0f} ms/step)")
        ds = dynlab.open_dataset(store)
        codec = StateCodec.from_dataset(ds)
        x_all = torch.as_tensor(codec.encode(ds))
        scale = x_all[split["train"]].reshape(-1, 8).std(0)
        test_w, member = windows(x_all[split["test"]], args.context, 4)
        ood = torch.as_tensor(codec.encode(dynlab.open_dataset(ood_store)))
        ood_w, _ = windows(ood, args.context, 4)
        dev = torch.device(args.device)
        dtype = next(models["energy_based"].parameters()).dtype
        test_w, ood_w = test_w.to(dev, dtype), ood_w.to(dev, dtype)

        def scaled_error(pred, w):  # per prediction: (W, L - burn)
            err = ((pred - w[:, 1:]) / scale.to(pred)).square().mean(-1)
            return err[:, burn:].mean(1).detach().cpu().numpy()

        em = models["energy_based"].eval()
        print(f"learned step size alpha = {float(em.step_size.detach()):.3g}")
        with torch.no_grad():
            ref = {"persistence": scaled_error(test_w[:, :-1], test_w),
                   "s4d": scaled_error(models["s4d"].eval()(test_w[:, :-1]), test_w)}

        def run(steps, n):
            em.set_inference(steps=steps, candidates=n)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                pred, energy = em.predict_with_energy(test_w[:, :-1])
            if dev.type == "cuda":
                torch.cuda.synchronize()
            per = (time.perf_counter() - start) / (test_w.shape[0] * (test_w.shape[1] - 1))
            return scaled_error(pred, test_w), energy[:, burn:].mean(1).cpu().numpy(), per

        print(f"\n# one-step scaled MSE on {len(member)} held-out windows from {len(set(member))} test members "
              f"(95% member-block bootstrap)")
        print(f"persistence: {bootstrap(ref['persistence'], np.mean, groups=member)['value']}; "
              f"s4d (same size, {args.steps} steps): {bootstrap(ref['s4d'], np.mean, groups=member)['value']}")
        results = {"steps": {}, "candidates": {}, "train_seconds": cost}
        print("\n| inference steps K | one-step scaled MSE | vs K = train max (paired) | µs per prediction |")
        print("|---|---|---|---|")
        base_err, base_energy, _ = run(args.train_steps_max, 1)
        for K in (0, 1, 2, 3, 5, 8, 16, 32):
            err, _, per = run(K, 1)
            iv = bootstrap({"K": err, "base": base_err}, np.mean, groups=member, reference="base")
            results["steps"][K] = {"mse": str(iv["K"]), "diff": str(iv["K - base"]), "us": per * 1e6}
            print(f"| {K} | {iv['K']} | {iv['K - base']} | {per * 1e6:.1f} |")
        print(f"\n| best-of-N (K = {args.train_steps_max}) | one-step scaled MSE | vs N = 1 (paired) | "
              f"µs per prediction |")
        print("|---|---|---|---|")
        for n in (1, 2, 4, 8, 16):
            err, _, per = run(args.train_steps_max, n)
            iv = bootstrap({"N": err, "base": base_err}, np.mean, groups=member, reference="base")
            results["candidates"][n] = {"mse": str(iv["N"]), "diff": str(iv["N - base"]), "us": per * 1e6}
            print(f"| {n} | {iv['N']} | {iv['N - base']} | {per * 1e6:.1f} |")

        from scipy.stats import spearmanr

        rho = bootstrap({"e": np.stack([base_energy, base_err], 1)},
                        lambda a: spearmanr(a[:, 0], a[:, 1]).statistic, groups=member)["e"]
        print(f"\n# energy as uncertainty (K = {args.train_steps_max}, N = 1)")
        print(f"Spearman(final energy, error) on held-out F=8 windows: {rho}")
        em.set_inference(steps=args.train_steps_max, candidates=1)
        with torch.no_grad():
            _, e_ood = em.predict_with_energy(ood_w[:, :-1])
        e_ood = e_ood[:, burn:].mean(1).cpu().numpy()
        norm = lambda w: ((w[:, burn:-1] - x_all.mean((0, 1)).to(w)) / scale.to(w)).square().mean((1, 2)).cpu().numpy()  # noqa: E731
        a_energy, a_norm = auroc(base_energy, e_ood), auroc(norm(test_w), norm(ood_w))
        print(f"AUROC of the final energy, F=10 inputs vs F=8: {a_energy:.3f}; "
              f"of the input's distance from the training mean: {a_norm:.3f}")
        results.update(spearman=str(rho), auroc_energy=a_energy, auroc_norm=a_norm)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
