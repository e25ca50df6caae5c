"""State-space model layers: HiPPO, S4D, selective scan (Mamba) and their blocks.

Names are resolved lazily so that importing one layer does not import all. The
selective-scan functions are bound eagerly: the module ``selective_scan`` shares its
name with its main function, and importing the submodule would otherwise leave the
module, not the function, as the package attribute.
"""
from __future__ import annotations

import importlib

from .selective_scan import selective_scan, selective_scan_chunked, selective_scan_ref  # noqa: F401

_EXPORTS = {
    # HiPPO and S4D
    "hippo_matrix": "dynlab.models.ssm.hippo",
    "hippo_nplr": "dynlab.models.ssm.hippo",
    "S4D": "dynlab.models.ssm.s4d",
    "S4DBlock": "dynlab.models.ssm.s4d",
    # selective scan and Mamba
    "selective_scan": "dynlab.models.ssm.selective_scan",
    "selective_scan_ref": "dynlab.models.ssm.selective_scan",
    "selective_scan_chunked": "dynlab.models.ssm.selective_scan",
    "MambaBlock": "dynlab.models.ssm.mamba",
    "MambaState": "dynlab.models.ssm.mamba",
    "SSMBackbone": "dynlab.models.ssm.backbone",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
