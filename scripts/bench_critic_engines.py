"""How much faster can a twin critic's training pass get by leaving autograd's module-by-module path? (issue 14)

    python scripts/bench_critic_engines.py [--net 256 256] [--batch-size 256] [--threads 1] [--compile]

Times the forward pass, the MSE loss and the weight gradients of SB3's twin ``ContinuousCritic`` heads (the work of a
critic update before the optimizer step) in four ways, in one process and interleaved, and checks that all give the
same gradients:

- ``autograd``: SB3's modules, ``loss.backward()``;
- ``one node``: the heads as one custom ``autograd.Function`` whose backward writes out the chain rule for
  ``Linear, ReLU, ..., Linear`` (the prototype of the sixth session, dropped: see ``docs/speed.md``);
- ``by hand``: the same forward and backward without autograd, into buffers allocated once, with in-place ``relu`` and
  masks - an upper bound for any rewrite that keeps float32 and eager PyTorch;
- ``compiled`` (``--compile``): ``torch.compile`` of the loss, its compile time printed.

Prints microseconds per pass (fastest round), GFLOP/s of the matrix products, and the ratio to ``autograd``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import torch as th
from torch import nn


class MlpHeads(th.autograd.Function):
    """Several ``Linear, ReLU, ..., Linear`` heads on one input as one autograd node (weights ``W, b`` per layer)."""

    @staticmethod
    def forward(ctx: Any, x: th.Tensor, n_layers: int, *params: th.Tensor) -> tuple[th.Tensor, ...]:  # type: ignore[override]
        outputs, saved = [], [x]
        for start in range(0, len(params), 2 * n_layers):
            hidden = x
            for layer in range(n_layers):
                hidden = th.addmm(params[start + 2 * layer + 1], hidden, params[start + 2 * layer].t())
                if layer < n_layers - 1:
                    hidden.relu_()
                    saved.append(hidden)
            outputs.append(hidden)
        ctx.n_layers = n_layers
        ctx.save_for_backward(*saved, *params)
        return tuple(outputs)

    @staticmethod
    def backward(ctx: Any, *output_grads: th.Tensor) -> tuple[th.Tensor | None, ...]:  # type: ignore[override]
        n_layers, saved, n_heads = ctx.n_layers, ctx.saved_tensors, len(output_grads)
        n_hidden = n_heads * (n_layers - 1)
        x, activations, params = saved[0], saved[1 : 1 + n_hidden], saved[1 + n_hidden :]
        grads: list[th.Tensor | None] = [None] * len(params)
        for head, grad in enumerate(output_grads):
            inputs = [x, *activations[head * (n_layers - 1) : (head + 1) * (n_layers - 1)]]
            for layer in reversed(range(n_layers)):
                index = 2 * n_layers * head + 2 * layer
                grads[index], grads[index + 1] = grad.t().mm(inputs[layer]), grad.sum(dim=0)
                if layer > 0:
                    grad = th.ops.aten.threshold_backward(grad.mm(params[index]), inputs[layer], 0.0)
        return (None, None, *grads)


def make_passes(
    heads: list[nn.Sequential], x: th.Tensor, target: th.Tensor, sizes: list[int], compile_too: bool
) -> dict[str, Callable[[], list[th.Tensor]]]:
    """The twin heads' training pass (forward, MSE, weight gradients) by each engine; each returns the gradients."""
    params = [p for h in heads for p in h.parameters()]
    n_layers = len(sizes) - 1

    def autograd_pass() -> list[th.Tensor]:
        loss = 0.5 * sum(nn.functional.mse_loss(h(x), target) for h in heads)
        return list(th.autograd.grad(loss, params))  # type: ignore[arg-type]

    def one_node_pass() -> list[th.Tensor]:
        loss = 0.5 * sum(nn.functional.mse_loss(q, target) for q in MlpHeads.apply(x, n_layers, *params))
        return list(th.autograd.grad(loss, params))  # type: ignore[arg-type]

    hidden = [[th.empty(x.shape[0], size) for size in sizes[1:]] for _ in heads]
    deltas = [[th.empty(x.shape[0], size) for size in sizes[1:-1]] for _ in heads]
    grads = [th.empty_like(p) for p in params]

    @th.no_grad()
    def by_hand_pass() -> list[th.Tensor]:
        for k in range(len(heads)):
            inputs = [x, *hidden[k][:-1]]
            for layer in range(n_layers):
                weight, bias = params[2 * n_layers * k + 2 * layer], params[2 * n_layers * k + 2 * layer + 1]
                th.addmm(bias, inputs[layer], weight.t(), out=hidden[k][layer])
                if layer < n_layers - 1:
                    hidden[k][layer].relu_()
            grad = hidden[k][-1].sub_(target).mul_(1.0 / x.shape[0])  # d/dq of 0.5 * mean((q - target)^2)
            for layer in reversed(range(n_layers)):
                index = 2 * n_layers * k + 2 * layer
                th.mm(grad.t(), inputs[layer], out=grads[index])
                th.sum(grad, dim=0, out=grads[index + 1])
                if layer > 0:
                    delta = deltas[k][layer - 1]
                    th.mm(grad, params[index], out=delta)
                    grad = delta.mul_(inputs[layer] > 0)
        return grads

    passes: dict[str, Callable[[], list[th.Tensor]]] = {
        "autograd": autograd_pass,
        "one node": one_node_pass,
        "by hand": by_hand_pass,
    }
    if compile_too:
        compiled_loss = th.compile(lambda: 0.5 * sum(nn.functional.mse_loss(h(x), target) for h in heads))
        start = time.perf_counter()
        compiled_loss().backward()
        print(f"torch.compile: {time.perf_counter() - start:.1f} s to compile")

        def compiled_pass() -> list[th.Tensor]:
            for p in params:
                p.grad = None
            compiled_loss().backward()
            return [p.grad for p in params]  # type: ignore[misc]

        passes["compiled"] = compiled_pass
    return passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--inputs", type=int, default=12, help="observation + action dimensions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the loss")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    th.manual_seed(0)
    sizes = [args.inputs, *args.net, 1]

    def head() -> nn.Sequential:
        layers: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU()] if index < len(sizes) - 2 else [])
        return nn.Sequential(*layers)

    heads = [head(), head()]
    x, target = th.randn(args.batch_size, args.inputs), th.randn(args.batch_size, 1)
    passes = make_passes(heads, x, target, sizes, args.compile)
    reference = passes["autograd"]()
    for name, run in passes.items():
        error = max(float((a - b).abs().max()) for a, b in zip(run(), reference))
        assert error < 1e-5, f"{name}: gradients differ from autograd's by {error}"
    best = {name: float("inf") for name in passes}
    for _ in range(args.rounds):
        for name, run in passes.items():
            for _ in range(10):
                run()
            start = time.perf_counter()
            for _ in range(args.repeats):
                run()
            best[name] = min(best[name], (time.perf_counter() - start) / args.repeats)
    products = [a * b for a, b in itertools.pairwise(sizes)]
    # Forward and weight gradients for every layer, input gradients for all but the first (the inputs need none).
    flop = 2 * args.batch_size * (2 * sum(products) + sum(products[1:])) * len(heads)
    print(f"twin critic heads {sizes}, batch {args.batch_size}, threads {args.threads}: forward, MSE, weight gradients")
    print(f"{'engine':10s} {'us/pass':>9s} {'GFLOP/s':>8s} {'x autograd':>10s}")
    for name, seconds in best.items():
        print(f"{name:10s} {seconds * 1e6:9.0f} {flop / seconds / 1e9:8.1f} {seconds / best['autograd']:10.2f}")


if __name__ == "__main__":
    main()
