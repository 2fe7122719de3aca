"""Loading the tests' helper scripts by their path.

Some helpers (``fleet_support.py``, ``fallback_fleet.py``, ``redis_server.py``) are also run as
scripts in child processes, where they import each other as top-level modules; the tests load
them the same way, under their own names (their dataclasses need a registered module).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def helper(name: str, path: Path | None = None) -> ModuleType:
    """``tests/<name>.py`` (or `path`) as the top-level module ``name`` (loaded once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path or HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
