"""MetaSACLag on SafeNavigation2D-v0, evaluated every 5,000 steps by default (issue-3 experiments, docs/known_answers.md).

python scripts/nav_experiment.py NAME [--steps 20000] [--every 5000] [--seed 0] [--descent] [key=value ...]

``key=value`` pairs are MetaSACLag arguments (numbers or strings), e.g. ``alpha_learning_rate=0.0003``
``epsilon_objective=nonlinear``, ``epsilon_batch=mixed``, ``policy_batch=all``, ``learn_alpha=0 alpha=0.05`` (0 reads
as False). ``--descent`` flips the epsilon optimiser to descent on its objective (an experiment, not a supported
option). Networks are [64, 64], one torch thread; each line printed is JSON, with
the share of gradient steps whose meta-gradients of ``epsilon`` and ``alpha`` were negative.
"""

from __future__ import annotations

import argparse
import json
import time

import torch as th
from outer_loop_experiment import parse_value, split_rule_settings  # scripts/ is on the path when a script runs
from stable_baselines3.common.callbacks import BaseCallback

from sb3_metasaclag import MetaSACLag
from sb3_metasaclag.common.evaluation import evaluate_safe_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("kwargs", nargs="*", help="MetaSACLag arguments as key=value")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=5_000, help="evaluate every this many steps")
    parser.add_argument("--descent", action="store_true")
    args = parser.parse_intermixed_args()
    th.set_num_threads(1)
    kwargs = {key: parse_value(value) for key, value in (pair.split("=", 1) for pair in args.kwargs)}
    kwargs = split_rule_settings("MetaSACLag", kwargs)  # the outer rule's settings go to outer_rule_kwargs
    model = MetaSACLag("MlpPolicy", "SafeNavigation2D-v0", seed=args.seed, policy_kwargs=dict(net_arch=[64, 64]), **kwargs)
    if args.descent:
        for group in model.epsilon_optimizer.param_groups:
            group["maximize"] = False
    signs: dict[str, list[float]] = {"epsilon": [], "alpha": []}

    class MetaGradientSigns(BaseCallback):
        """Read the meta-gradients the model logs (``train/epsilon_meta_grad``, ``train/alpha_meta_grad``: means over
        the gradient steps of one ``train()`` call, one step per environment step here) after each ``train()``."""

        def _init_callback(self) -> None:
            self.updates = self.model._n_updates

        def _on_rollout_start(self) -> None:
            if self.model._n_updates == self.updates:
                return
            self.updates = self.model._n_updates
            for key in signs:
                value = self.model.logger.name_to_value.get(f"train/{key}_meta_grad")
                if value is not None:
                    signs[key].append(float(value < 0))

        def _on_step(self) -> bool:
            return True

    start = time.time()
    for _ in range(args.steps // args.every):
        model.learn(args.every, reset_num_timesteps=False, callback=MetaGradientSigns())
        evaluation = evaluate_safe_policy(model, "SafeNavigation2D-v0", 30)
        record = {
            "name": args.name,
            "steps": model.num_timesteps,
            "seconds": round(time.time() - start),
            "epsilon": round(float(model.epsilon.detach()), 3),
            "nu": round(float(model.nu.detach()), 3),
            "alpha": round(float(model.alpha.detach()), 4),
            **{key: round(float(value), 3) for key, value in evaluation.items()},
            # Share of the gradient steps of this chunk whose meta-gradient was negative.
            **{f"{key}_gradient_negative": round(sum(values) / len(values), 3) for key, values in signs.items() if values},
        }
        for values in signs.values():
            values.clear()
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
