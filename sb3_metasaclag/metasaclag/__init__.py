from sb3_metasaclag.metasaclag.metasaclag import MetaSACLag
from sb3_metasaclag.metasaclag.policies import MlpPolicy, MultiInputPolicy

__all__ = ["MetaSACLag", "MlpPolicy", "MultiInputPolicy"]
