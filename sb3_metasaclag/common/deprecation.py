"""Old import paths kept working for one release, with a warning that names the new one."""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["alias_renamed_package", "renamed_argument"]


def alias_renamed_package(old: str, new: str, submodules: dict[str, str]) -> ModuleType:
    """Make the package ``old`` (being imported) an alias of ``new`` and each ``old.<a>`` of ``new.<b>`` for ``a: b`` in
    ``submodules``, so that imports and pickles that name the old path keep working; warn once, on the import.

    :param old: The package's former dotted name (the module calling this).
    :param new: Its current dotted name.
    :param submodules: Former submodule name -> current submodule name.
    :return: The current package, whose public names the caller re-exports.
    """
    warnings.warn(
        f"{old} was renamed {new} (the algorithm's RL Zoo name); the old import path will be removed in the next "
        f"release: import from {new} (or from sb3_metasaclag) instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    for former, current in submodules.items():
        sys.modules[f"{old}.{former}"] = importlib.import_module(f"{new}.{current}")
    return importlib.import_module(new)


def renamed_argument(old_name: str, old_value: Any, new_name: str, new_value: Any) -> Any:
    """The value of an argument that was renamed ``old_name`` -> ``new_name``: ``new_value`` unless the caller used the
    old name (``old_value`` not None), whose value then counts, with a ``DeprecationWarning``."""
    if old_value is None:
        return new_value
    warnings.warn(
        f"{old_name}= was renamed {new_name}= (same values); the old name will be removed in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
