"""Is one batched matmul per layer over all critics faster than SB3's loop over critic modules? (issue 14)

    python scripts/bench_ensemble.py [--net 64 64] [--batch-size 256] [--threads 1] [--repeats 300]

Times a forward and backward pass (gradients of the critics' weights and of the actions, as the actor and critic
losses need) of four critics - the twin reward and twin safety critics of the package's algorithms - two ways, in the
same process and interleaved: SB3's ``ContinuousCritic`` modules called one after the other, and the same weights
stacked per layer and evaluated with one ``baddbmm`` per layer. Both give the same values (checked).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    observation_space, action_space = spaces.Box(-1, 1, (10,)), spaces.Box(-1, 1, (2,))

    def critic() -> ContinuousCritic:
        extractor = FlattenExtractor(observation_space)
        return ContinuousCritic(observation_space, action_space, args.net, extractor, 10, n_critics=2)

    critics = [critic(), critic()]
    networks = [q for c in critics for q in c.q_networks]
    layers = [i for i, module in enumerate(networks[0]) if isinstance(module, nn.Linear)]
    parameters = [p for c in critics for p in c.parameters()]
    observations = th.randn(args.batch_size, 10)
    actions = th.randn(args.batch_size, 2, requires_grad=True)

    def separate() -> th.Tensor:
        return th.cat([q for c in critics for q in c(observations, actions)], dim=1)

    def stacked() -> th.Tensor:
        h = th.cat([observations, actions], dim=1).unsqueeze(0).expand(len(networks), -1, -1)
        for k, i in enumerate(layers):
            weight = th.stack([n[i].weight for n in networks]).transpose(1, 2)
            bias = th.stack([n[i].bias for n in networks]).unsqueeze(1)
            h = th.baddbmm(bias, h, weight)
            if k < len(layers) - 1:
                h = th.relu(h)
        return h.squeeze(-1).T

    assert th.allclose(separate(), stacked(), atol=1e-5)
    times: dict[str, list[float]] = {"SB3 modules, one after the other": [], "stacked, one baddbmm per layer": []}
    for _ in range(args.rounds):
        for name, function in zip(times, (separate, stacked)):
            start = time.perf_counter()
            for _ in range(args.repeats):
                th.autograd.grad(function().sum(), [actions, *parameters])
            times[name].append((time.perf_counter() - start) / args.repeats * 1000)
    reference = np.median(next(iter(times.values())))
    print(f"4 critics, net={args.net} batch={args.batch_size} threads={args.threads}: forward + backward")
    print(f"{'evaluation':36s} {'ms':>7s} {'ratio':>7s}")
    for name, values in times.items():
        print(f"{name:36s} {np.median(values):7.3f} {np.median(values) / reference:7.2f}")


if __name__ == "__main__":
    main()
