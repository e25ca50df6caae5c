"""Shared fixtures. Tests run on CPU in float64 unless they say otherwise."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# one intra-op thread: the tensors in tests are small, and two threads on a busy
# 2-core machine make some torch ops orders of magnitude slower
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
