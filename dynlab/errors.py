"""Errors that are the user's to fix: the CLI prints them as one line, no traceback."""
from __future__ import annotations


class DynlabError(Exception):
    """A user error (bad config, missing or foreign store, ...). The message says
    what is wrong and names the value."""


class ConfigError(DynlabError, ValueError):
    """A configuration value is invalid."""


class StoreError(DynlabError):
    """A dataset store is missing, foreign, incomplete or belongs to another config."""


class SimulationError(DynlabError):
    """A simulation failed (for example a member's state blew up)."""
