"""Count the floating-point work of one gradient step of SB3's SAC and of every algorithm of the package, and set it
against the time each step takes and the machine's matrix-multiply rate.

    python scripts/count_flops.py [--net 256 256] [--batch-size 256] [--steps 20] [--rounds 5] [--threads 1]

For each model: GFLOP per gradient step (matrix products forward and backward, counted by
``torch.utils.flop_counter.FlopCounterMode``; element-wise work is not counted), that work as a multiple of SAC's, the
measured ms per step (fastest of ``--rounds`` rounds of ``--steps`` steps, models built and timed by ``bench_train.py``),
the achieved GFLOP/s, the *matmul floor*: the time the step's products alone take at the rate one thread reaches on
a ``(batch, width) x (width, width)`` product (printed first). ``floor x SAC`` is that floor divided by SB3 SAC's
measured step time: no implementation that keeps the step's arithmetic in float32 can run below it. ``ops/step``: the
ATen operators one gradient step dispatches (at small widths their fixed cost, not arithmetic, sets the time).
"""

from __future__ import annotations

import argparse
import time

import torch as th
from bench_train import make_models, time_models  # this directory: python scripts/count_flops.py
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode


class OperatorCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched (each is one kernel call on the CPU, with its fixed cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def matmul_rate(batch: int, width: int, repeats: int = 2000) -> float:
    """GFLOP/s of a ``(batch, width) x (width, width)`` float32 product on the current thread setting."""
    a, b = th.randn(batch, width), th.randn(width, width)
    for _ in range(50):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * batch * width * width * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--net", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--env", default="SafeNavigation2D-v0")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    models = make_models(args.env, args.net, args.batch_size, autograd=False)
    flops: dict[str, float] = {}
    operators: dict[str, int] = {}
    for name, model in models.items():
        counter = FlopCounterMode(display=False)
        with counter:
            model.train(gradient_steps=1, batch_size=args.batch_size)
        flops[name] = counter.get_total_flops() / 1e9
        with OperatorCounter() as operator_counter:
            model.train(gradient_steps=1, batch_size=args.batch_size)
        operators[name] = operator_counter.count
    times = time_models(models, args.steps, args.rounds, args.batch_size)
    rate = matmul_rate(args.batch_size, max(args.net))
    sac_ms = min(times["SB3 SAC"])
    print(
        f"env={args.env} net={args.net} batch={args.batch_size} threads={args.threads} steps={args.steps}x{args.rounds} "
        f"(min over rounds); matmul rate ({args.batch_size}x{max(args.net)} by {max(args.net)}x{max(args.net)}): "
        f"{rate:.0f} GFLOP/s"
    )
    print(
        f"{'model':26s} {'GFLOP/step':>10s} {'x SAC':>6s} {'ms/step':>8s} {'x SAC':>6s} {'GFLOP/s':>8s} "
        f"{'floor ms':>9s} {'floor x SAC':>11s} {'ops/step':>8s}"
    )
    for name in models:
        ms = min(times[name])
        floor = flops[name] / rate * 1000
        print(
            f"{name:26s} {flops[name]:10.3f} {flops[name] / flops['SB3 SAC']:6.2f} {ms:8.2f} {ms / sac_ms:6.2f} "
            f"{flops[name] / ms * 1000:8.1f} {floor:9.2f} {floor / sac_ms:11.2f} {operators[name]:8d}"
        )


if __name__ == "__main__":
    main()
