"""Quickstart: the three lines of the README on a built-in environment (about a minute on one core)."""

import torch as th

from sb3_metasaclag import MetaSACLag

th.set_num_threads(1)

model = MetaSACLag("MlpPolicy", "SafeBandit-v0", learning_rate=1e-3, batch_size=64, policy_kwargs=dict(net_arch=[32, 32]))
model.learn(2_000, progress_bar=True)
model.save("metasaclag_bandit")
model = MetaSACLag.load("metasaclag_bandit")

action, _ = model.predict([1.0], deterministic=True)
print(
    f"learned action {action[0]:.3f} (best safe action: 0.5); epsilon {model.epsilon.item():.3f}, "
    f"alpha {model.alpha.item():.3f}, nu {model.nu.item():.2f}"
)
