"""Registers sb3-metasaclag with RL Zoo (rl-zoo3) when RL Zoo is imported.

This module is installed at the top level of site-packages together with ``sb3_metasaclag_zoo.pth``, which imports it
at interpreter start. RL Zoo has no plugin entry points and builds its ``--algo`` choices from ``rl_zoo3.utils.ALGOS``
before it imports ``--gym-packages``, so the registration must happen while RL Zoo's own modules are imported.

At start-up this module only puts a small finder at the front of ``sys.meta_path`` (standard library ``sys`` only, no
other import: it costs well under a millisecond). The finder does nothing for any module but three of RL Zoo's; after
one of those has run, ``sb3_metasaclag.zoo.patch_rl_zoo_module`` adds the algorithms, samplers and default
hyperparameter files. If that fails (a missing or broken optional dependency), a warning is printed and RL Zoo works as
without this package. Set ``SB3_METASACLAG_DISABLE_ZOO_HOOK=1`` to switch the hook off. Uninstalling sb3-metasaclag
removes this file and the ``.pth``; RL Zoo's own files are never modified.
"""

import os
import sys

_TARGETS = frozenset({"rl_zoo3.utils", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager"})


def _patch(module):
    try:
        from sb3_metasaclag.zoo import patch_rl_zoo_module

        patch_rl_zoo_module(module)
    except Exception as error:
        import warnings

        warnings.warn(
            f"sb3-metasaclag could not register its algorithms with RL Zoo ({type(error).__name__}: {error}); "
            "RL Zoo works without them.",
            RuntimeWarning,
            stacklevel=2,
        )


class _LoaderProxy:
    """Runs the real loader, then patches the module it executed."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _patch(module)


class RLZooFinder:
    """A ``sys.meta_path`` finder that only intercepts ``rl_zoo3.utils``, ``.hyperparams_opt`` and ``.exp_manager``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, RLZooFinder) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _LoaderProxy(spec.loader)
            return spec
        return None


def install():
    """Put the finder on ``sys.meta_path`` (once), unless ``SB3_METASACLAG_DISABLE_ZOO_HOOK`` is set."""
    if os.environ.get("SB3_METASACLAG_DISABLE_ZOO_HOOK", "") not in ("", "0"):
        return
    if not any(isinstance(finder, RLZooFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, RLZooFinder())


try:
    install()
except Exception:  # pragma: no cover - never break interpreter start-up
    pass
