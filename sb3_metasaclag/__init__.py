"""sb3-metasaclag: Meta SAC-Lag and its baselines for Stable-Baselines3."""

import os
import warnings

from sb3_metasaclag.envs import register_envs
from sb3_metasaclag.envs.safety_gym_compat import import_safety_gymnasium
from sb3_metasaclag.export import export_policy
from sb3_metasaclag.meta_sac_lag import MetaSACLag
from sb3_metasaclag.rcpo_meta_sac import RCPOMetaSAC
from sb3_metasaclag.rcpo_sac import RCPOSAC
from sb3_metasaclag.sac_lag import SACLag

# Read version from file
version_file = os.path.join(os.path.dirname(__file__), "version.txt")
with open(version_file) as file_handler:
    __version__ = file_handler.read().strip()

register_envs()

# Safety-Gymnasium is an optional dependency: when it is installed, make its tasks importable
# ("Safety<Task>Gymnasium-v0" ids) on Python 3.11 + gymnasium 1.x. A broken installation must not break this package.
try:
    import_safety_gymnasium()
except Exception as error:  # pragma: no cover - depends on the user's installation
    warnings.warn(f"Safety-Gymnasium is installed but could not be imported, its tasks are unavailable: {error!r}")

__all__ = ["RCPOSAC", "MetaSACLag", "RCPOMetaSAC", "SACLag", "__version__", "export_policy"]
