"""sb3-metasaclag: Meta SAC-Lag and its baselines for Stable-Baselines3."""

from sb3_metasaclag.common.safe_sac import PACKAGE_VERSION as __version__
from sb3_metasaclag.envs import register_envs
from sb3_metasaclag.export import export_policy
from sb3_metasaclag.metasaclag import MetaSACLag
from sb3_metasaclag.rcpo_metasac import RCPOMetaSAC
from sb3_metasaclag.rcpo_sac import RCPOSAC
from sb3_metasaclag.saclag import SACLag

# The built-in and robotics tasks, and - when Safety-Gymnasium is installed - its "Safety<Task>Gymnasium-v0" ids, which
# import it (mended for Python 3.11 + gymnasium 1.x) when the first of them is made: importing this package imports
# no simulator and patches nothing.
register_envs()

__all__ = ["RCPOSAC", "MetaSACLag", "RCPOMetaSAC", "SACLag", "__version__", "export_policy"]
