"""Fast rollouts: memoised step tensors agree with recomputed ones and follow parameter changes;
the parallel warm-up equals the recurrent one; compiled rollouts equal eager ones; step threads."""
from __future__ import annotations

import warnings

import pytest
import torch

from dynlab.emulators import HiPPOEmulator, LinearOneStep, Persistence, SSMEmulator
from dynlab.models.ssm import MambaBlock, S4D, S4DBlock, SSMBackbone
from dynlab.models.ssm import selective_scan_ref
from dynlab.models.ssm.step_cache import (clear_step_cache, set_step_cache_enabled, step_cache_disabled,
                                          step_cache_enabled, step_cache_scope)
from dynlab.testing import assert_emulator_contract
from dynlab.threads import SMALL_STEP_ELEMENTS, state_numel, step_threads
from dynlab.train.losses import rollout_step_losses

F64 = torch.float64
D = 6


def _steps(module, u, state, **kwargs):
    ys = []
    for u_t in u.unbind(1):
        y, state = module.step(u_t, state, **kwargs)
        ys.append(y)
    return torch.stack(ys, 1), state


def _flat(state):
    if isinstance(state, torch.Tensor):
        return [torch.view_as_real(state) if state.is_complex() else state]
    return [t for s in state for t in _flat(s)]


def _max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(_flat(a), _flat(b)))


def _emulator(block, encoder=None, seed=0, **backbone):
    """A float64 SSM emulator with a full-size decoder and non-trivial normalisers."""
    from dynlab.emulators.codec import FieldSpec, StateCodec

    torch.manual_seed(seed)
    codec = StateCodec((FieldSpec("X", ("k",), (D,)),)) if encoder is not None else D
    em = SSMEmulator(codec, d_model=8, n_layers=2, block=block, spatial_encoder=encoder, kernel_size=3,
                     backbone=backbone or {"d_state": 4}, decoder_init_scale=1.0).double()
    with torch.no_grad():
        em.normalizer.mean.normal_()
        em.increment_normalizer.std.uniform_(0.5, 1.5)
    return em


def _layers():
    torch.manual_seed(0)
    return {
        "s4d": S4D(4, 8, dt_min=0.05, dt_max=0.5, dtype=F64),
        "s4d_bilinear": S4D(4, 8, discretization="bilinear", dtype=F64),
        "s4d_block": S4DBlock(4, 8, dtype=F64),
        "mamba": MambaBlock(4, d_state=4, dtype=F64),
        "backbone_s4d": SSMBackbone(4, 2, block="s4d", d_state=8, dtype=F64),
        "backbone_mamba": SSMBackbone(4, 2, block="mamba", d_state=4, dtype=F64),
    }


# --- 1. memoised discretisations -----------------------------------------------------------

@pytest.mark.parametrize("name", list(_layers()))
def test_cached_steps_equal_uncached_steps_and_follow_optimizer_steps(name):
    layer = _layers()[name]
    g = torch.Generator().manual_seed(1)
    u = torch.randn(3, 7, 4, dtype=F64, generator=g)
    state = layer.default_state(3, dtype=F64)
    assert step_cache_enabled()
    for round_ in range(2):
        with torch.no_grad():
            y_cached, s_cached = _steps(layer, u, state)
            y_again, _ = _steps(layer, u, state)  # from the memo
            with step_cache_disabled():
                y_fresh, s_fresh = _steps(layer, u, state)
        assert float((y_cached - y_fresh).abs().max()) <= 1e-14
        assert float((y_again - y_fresh).abs().max()) <= 1e-14
        assert _max_diff(s_cached, s_fresh) <= 1e-14
        if round_ == 0:  # change every parameter with an optimiser step, then compare again
            opt = torch.optim.Adam(layer.parameters(), lr=0.1)
            y, _ = layer(u)
            y.square().sum().backward()
            opt.step()
            with torch.no_grad():
                assert float((_steps(layer, u, state)[0] - y_cached).abs().max()) > 1e-3  # the steps moved


def test_memo_follows_load_state_dict_and_dtype_changes():
    torch.manual_seed(0)
    layer, other = S4D(4, 8, dtype=F64), S4D(4, 8, dtype=F64)
    u = torch.randn(2, 5, 4, dtype=F64)
    with torch.no_grad():
        _steps(layer, u, layer.default_state(2))
        layer.load_state_dict(other.state_dict())
        y, _ = _steps(layer, u, layer.default_state(2))
        y_other, _ = _steps(other, u, other.default_state(2))
        assert float((y - y_other).abs().max()) <= 1e-14
        layer.float()
        y32, _ = _steps(layer, u.float(), layer.default_state(2))
        assert y32.dtype == torch.float32 and float((y32.double() - y_other).abs().max()) < 1e-4
        # a different step size is a different entry
        y2, _ = _steps(layer, u.float(), layer.default_state(2), dt=2.0)
        with step_cache_disabled():
            y2_fresh, _ = _steps(layer, u.float(), layer.default_state(2), dt=2.0)
        assert torch.equal(y2, y2_fresh) and not torch.equal(y2, y32)


def test_writes_through_data_need_clear_step_cache():
    """The documented hole: .data writes do not bump the version; clear_step_cache (or train()) fixes it."""
    torch.manual_seed(0)
    layer = S4D(4, 8, dtype=F64)
    u = torch.randn(2, 3, 4, dtype=F64)
    with torch.no_grad():
        before, _ = _steps(layer, u, layer.default_state(2))
        layer.log_dt.data += 1.0
        stale, _ = _steps(layer, u, layer.default_state(2))
        assert torch.equal(stale, before)
        layer.train()
        fresh, _ = _steps(layer, u, layer.default_state(2))
        with step_cache_disabled():
            expected, _ = _steps(layer, u, layer.default_state(2))
        assert torch.equal(fresh, expected) and not torch.equal(fresh, before)
        layer.log_dt.data -= 1.0
        clear_step_cache(layer)
        assert torch.equal(_steps(layer, u, layer.default_state(2))[0], before)


@pytest.mark.parametrize("block", ["s4d", "mamba"])
def test_gradients_through_a_scoped_memo_equal_recomputed_ones(block):
    """Under autograd the memo lives for one scope: every step shares one graph node; the
    gradients equal those of recomputing at every step, and two backward passes work."""
    torch.manual_seed(0)
    net = SSMBackbone(4, 2, block=block, d_state=4, dtype=F64)
    u = torch.randn(2, 6, 4, dtype=F64)

    def grads(scope: bool):
        net.zero_grad()
        with step_cache_scope() if scope else step_cache_disabled():
            y, state = _steps(net, u, net.default_state(2))
        (y.square().sum() + sum(s.abs().square().sum() for s in _flat(state))).backward()
        return [p.grad.clone() for p in net.parameters()]

    for _ in range(2):  # a second graph must not reuse the first one's (freed) nodes
        scoped, fresh = grads(True), grads(False)
        assert max(float((a - b).abs().max()) for a, b in zip(scoped, fresh)) <= 1e-12
        # outside a scope nothing is memoised under autograd
        y, _ = _steps(net, u, net.default_state(2))
        y.sum().backward()


def test_step_cache_switch_validates():
    with pytest.raises(ValueError, match="enabled must be a bool"):
        set_step_cache_enabled(1)
    with pytest.raises(ValueError, match="module must be a torch.nn.Module"):
        clear_step_cache("layer")


# --- 2. parallel warm-up ---------------------------------------------------------------------

@pytest.mark.parametrize("block,backbone", [("s4d", {"d_state": 4}), ("s4d", {"d_state": 8, "init": "lin"}),
                                            ("mamba", {"d_state": 4})])
@pytest.mark.parametrize("encoder", [None, "periodic_conv"])
def test_parallel_warm_up_equals_recurrent_warm_up(block, backbone, encoder):
    em = _emulator(block, encoder, **backbone)
    g = torch.Generator().manual_seed(3)
    context = torch.randn(3, 9, D, dtype=F64, generator=g)
    with torch.no_grad():
        y_par, s_par = em.warm_up(context)
        em.parallel_warmup = False
        y_rec, s_rec = em.warm_up(context)
        roll_rec = em.rollout(context, 5)
        em.parallel_warmup = True
        roll_par = em.rollout(context, 5)
    assert float((y_par - y_rec).abs().max()) <= 1e-12
    assert _max_diff(s_par, s_rec) <= 1e-12
    assert float((roll_par - roll_rec).abs().max()) <= 1e-11
    assert_emulator_contract(em, context[:, :6], atol=1e-10)


@pytest.mark.parametrize("block", ["s4d", "mamba"])
def test_rollout_loss_gradients_with_parallel_warm_up_equal_recurrent(block):
    em = _emulator(block).train()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 8, D, dtype=F64, generator=g)

    def grads(parallel: bool):
        em.parallel_warmup = parallel
        em.zero_grad()
        losses = rollout_step_losses(em, x, context=5, horizon=3)
        losses.sum().backward()
        return losses.detach(), [p.grad.clone() for p in em.parameters() if p.grad is not None]

    (l_par, g_par), (l_rec, g_rec) = grads(True), grads(False)
    assert float((l_par - l_rec).abs().max()) <= 1e-12
    assert len(g_par) == len(g_rec) > 0
    assert max(float((a - b).abs().max()) for a, b in zip(g_par, g_rec)) <= 1e-10


def test_other_emulators_keep_the_recurrent_warm_up():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 12, D, dtype=F64, generator=g)
    for em in (Persistence(D), LinearOneStep(D).double(), HiPPOEmulator(D, dt=0.05).double()):
        assert_emulator_contract(em, x[:, :8], atol=1e-10)
        y, _ = em.warm_up(x[:, :8])
        assert float((y - em.rollout(x[:, :8], 1)[:, 0]).abs().max()) == 0.0


def test_ssm_warm_up_rejects_forcing():
    em = _emulator("s4d")
    with pytest.raises(ValueError, match="takes no forcing"):
        em.warm_up(torch.zeros(1, 3, D, dtype=F64), torch.zeros(1, 3, 1, dtype=F64))


# --- 3. compiled rollouts --------------------------------------------------------------------

def _compiled_equals_eager(block, **options):
    em = _emulator(block).eval()
    em.rollout_compile_options = options
    g = torch.Generator().manual_seed(6)
    context = torch.randn(2, 4, D, dtype=F64, generator=g)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations inside torch's compiler
        eager = em.rollout(context, 5)
        compiled = em.rollout(context, 5, compile=True)
    step = em.compiled_step()
    assert step.failed is None, step.failed
    assert step.compile_seconds is not None and step.compile_seconds > 0
    assert float((compiled - eager).abs().max()) <= 1e-12
    torch._dynamo.reset()


@pytest.mark.parametrize("block", ["s4d", "mamba"])
def test_captured_rollout_equals_eager(block):
    """Graph capture alone (dynamo, backend="eager"): the memo steps aside while tracing."""
    _compiled_equals_eager(block, backend="eager")


@pytest.mark.slow
@pytest.mark.parametrize("block", ["s4d", "mamba"])
def test_compiled_rollout_equals_eager(block):
    _compiled_equals_eager(block)  # inductor: 30-70 s to compile on 2 CPU cores


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    em = Persistence(D)
    x = torch.randn(2, 3, D, dtype=F64)

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        out = em.rollout(x, 4, compile=True)
    assert torch.equal(out, em.rollout(x, 4))
    with pytest.raises(ValueError, match="compile must be True, False or None"):
        em.rollout(x, 4, compile="yes")


# --- 4. threads --------------------------------------------------------------------------------

def test_step_threads_lowers_and_restores(monkeypatch):
    monkeypatch.delenv("DYNLAB_STEP_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with step_threads(10) as n:
            assert n == torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with step_threads(SMALL_STEP_ELEMENTS) as n:  # large steps: unchanged
            assert n == torch.get_num_threads() == 2
        with step_threads(10, device="meta") as n:  # not a CPU loop: unchanged
            assert n == 2
        monkeypatch.setenv("DYNLAB_STEP_THREADS", "0")
        with step_threads(10) as n:
            assert n == 2
        monkeypatch.setenv("DYNLAB_STEP_THREADS", "x")
        with pytest.raises(ValueError, match="DYNLAB_STEP_THREADS must be an integer"):
            with step_threads(10):
                pass
        with pytest.raises(ValueError, match="work must be an integer"):
            with step_threads(-1):
                pass
    finally:
        torch.set_num_threads(before)
    z = torch.zeros(2, 3, dtype=torch.complex64)
    assert state_numel((z, [torch.zeros(4)], {"a": None})) == 16


# --- 5. the reference scan's loop ----------------------------------------------------------

def test_reference_scan_loops_with_unbind_not_indexing():
    """Indexing u[:, t] puts L SelectBackward nodes, each a full-size zero-filled gradient,
    into the graph (backward O(L²)); unbind puts one UnbindBackward node per input."""
    g = torch.Generator().manual_seed(7)
    Bt, L, H, N = 2, 12, 3, 4
    u, delta = (torch.randn(Bt, L, H, dtype=F64, generator=g, requires_grad=True) for _ in range(2))
    A = -torch.rand(H, N, dtype=F64, generator=g)
    Bm, C = (torch.randn(Bt, L, N, dtype=F64, generator=g) for _ in range(2))
    y = selective_scan_ref(u, delta, A, Bm, C)
    names, seen, todo = [], set(), [y.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    assert not any(n.startswith("SelectBackward") for n in names)
    assert sum(n.startswith("UnbindBackward") for n in names) >= 2
