from sb3_metasaclag.common.policies import MlpPolicy, MultiInputPolicy
from sb3_metasaclag.rcpo_sac.rcpo_sac import RCPOSAC

__all__ = ["RCPOSAC", "MlpPolicy", "MultiInputPolicy"]
