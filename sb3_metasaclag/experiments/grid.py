"""A grid of training runs (contenders x environments x seeds) kept in an Optuna study.

Each cell of the grid is one Optuna trial, enqueued with its configuration in ``user_attrs["config"]``. Worker
processes, on this machine or on any machine that reaches the same storage, pop the next waiting trial, train it exactly
as ``python -m rl_zoo3.train`` would, and store its outcome on the trial. Optuna's heartbeat marks the trial of a worker
that died as failed after ``grace_period`` seconds, and :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`
puts it back in the queue; running the command again enqueues only the cells that have neither a finished nor a
pending trial, so finished runs are never redone.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import math
import multiprocessing
import os
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OUTCOME_KEYS",
    "Contender",
    "GridCell",
    "enqueue_grid",
    "grid_cells",
    "grid_file_cells",
    "open_storage",
    "parse_assignments",
    "run_cell",
    "run_grid",
    "validate_grid",
]

#: What each run stores on its trial (``user_attrs``), besides ``config`` and ``log_path``.
OUTCOME_KEYS = (
    "eval_return",
    "eval_success",
    "eval_violation_rate",
    "eval_cost",
    "training_violating_episodes",
    "training_episodes",
    "final_epsilon",
    "final_alpha",
    "final_nu",
    "epsilon_range_last_quarter",
    "greedy_distance",
    "wall_seconds",
    "steps_per_second",
)
#: Keys of the end-of-episode ``info`` that runs record per training episode (``episodes.csv``), when present.
EPISODE_INFO_KEYS = ("is_success", "success", "ee_acceleration_mean", "ee_jerk_mean", "spilled_total")


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal (``0.5``, ``True``, ``[64, 64]``, ``'paper'``) or else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_assignments(items: Sequence[str], what: str = "--params") -> dict[str, Any]:
    """``["key=value", ...]`` as a dict (values parsed by :func:`parse_value`)."""
    result: dict[str, Any] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"{what} expects key=value items, got {item!r}")
        result[key.strip()] = parse_value(value.strip())
    return result


@dataclass(frozen=True)
class Contender:
    """An algorithm of RL Zoo's ``ALGOS`` under a label of its own, with its own hyperparameter overrides.

    :param label: Name of the contender in tables and plots (default: the algorithm's name).
    :param algo: RL Zoo's ``--algo`` (``metasaclag``, ``saclag``, ``sac``, ...).
    :param params: Hyperparameters that override the algorithm's ``hyperparams/<algo>.yml`` entry.
    """

    label: str
    algo: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridCell:
    """One run of the grid."""

    label: str
    algo: str
    env: str
    seed: int
    steps: int | None
    params: dict[str, Any]
    env_kwargs: dict[str, Any]
    eval_freq: int
    eval_episodes: int
    final_eval_episodes: int

    @property
    def key(self) -> str:
        """A readable name that is unique for the whole configuration: ``label|env|seed|hash``."""
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        return f"{self.label}|{self.env}|{self.seed}|{digest}"

    def to_dict(self) -> dict[str, Any]:
        return dict(
            label=self.label,
            algo=self.algo,
            env=self.env,
            seed=self.seed,
            steps=self.steps,
            params=self.params,
            env_kwargs=self.env_kwargs,
            eval_freq=self.eval_freq,
            eval_episodes=self.eval_episodes,
            final_eval_episodes=self.final_eval_episodes,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridCell:
        return cls(**data)


def grid_cells(
    contenders: Sequence[Contender],
    envs: Sequence[str],
    seeds: Sequence[int],
    steps: int | None = None,
    params: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    eval_freq: int = 2_000,
    eval_episodes: int = 10,
    final_eval_episodes: int = 30,
) -> list[GridCell]:
    """The cells of the grid, in the order they are run (seed-major, so that early results cover every contender).

    ``params`` applies to every contender; a contender's own ``params`` win over it.
    """
    cells = []
    for seed in seeds:
        for env in envs:
            for contender in contenders:
                cells.append(
                    GridCell(
                        label=contender.label,
                        algo=contender.algo,
                        env=env,
                        seed=int(seed),
                        steps=None if steps is None else int(steps),
                        params={**(params or {}), **contender.params},
                        env_kwargs=dict(env_kwargs or {}),
                        eval_freq=int(eval_freq),
                        eval_episodes=int(eval_episodes),
                        final_eval_episodes=int(final_eval_episodes),
                    )
                )
    return cells


#: Keys of a grid file's block, with the defaults of the command line.
GRID_KEYS = (
    "contenders",
    "envs",
    "seeds",
    "steps",
    "params",
    "env_kwargs",
    "eval_freq",
    "eval_episodes",
    "final_eval_episodes",
)


def grid_file_cells(path: str) -> list[GridCell]:
    """The cells of a grid file (YAML): one block, or a list of blocks under ``grids`` (e.g. one per budget). A block has
    the command line's settings: ``contenders`` (a list of ``{label, algo, params}``; ``label`` defaults to ``algo``),
    ``envs``, ``seeds`` (default ``[0]``), ``steps``, ``params`` (for every contender), ``env_kwargs``, ``eval_freq``,
    ``eval_episodes``, ``final_eval_episodes``."""
    import yaml

    try:
        with open(path) as file:
            content = yaml.safe_load(file)
    except OSError as error:
        raise ValueError(f"Cannot read the grid file {path}: {error}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"The grid file {path} is not valid YAML: {error}") from error
    blocks = content.get("grids", [content]) if isinstance(content, dict) else None
    if not blocks or not all(isinstance(block, dict) for block in blocks):
        raise ValueError(f"The grid file {path} must hold a mapping (one grid) or a list of mappings under 'grids'")
    cells: list[GridCell] = []
    for number, block in enumerate(blocks, 1):
        where = f"{path}, grid {number}"
        unknown = sorted(set(block) - set(GRID_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; a grid has {list(GRID_KEYS)}")
        if not block.get("contenders") or not block.get("envs"):
            raise ValueError(f"{where}: give 'contenders' and 'envs'")
        contenders = []
        for spec in block["contenders"]:
            if not isinstance(spec, dict) or "algo" not in spec or set(spec) - {"label", "algo", "params"}:
                raise ValueError(f"{where}: a contender is a mapping with 'algo' (and 'label', 'params'), got {spec!r}")
            contenders.append(
                Contender(str(spec.get("label", spec["algo"])), str(spec["algo"]), dict(spec.get("params") or {}))
            )
        labels = [contender.label for contender in contenders]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{where}: contender labels must differ, got {labels}")
        cells += grid_cells(
            contenders,
            list(block["envs"]),
            list(block.get("seeds", [0])),
            steps=block.get("steps"),
            params=dict(block.get("params") or {}),
            env_kwargs=dict(block.get("env_kwargs") or {}),
            eval_freq=int(block.get("eval_freq", 2_000)),
            eval_episodes=int(block.get("eval_episodes", 10)),
            final_eval_episodes=int(block.get("final_eval_episodes", 30)),
        )
    return cells


def _zoo_algos() -> dict[str, Any]:
    import rl_zoo3.utils

    from sb3_metasaclag.zoo import register_with_rl_zoo

    register_with_rl_zoo()  # a no-op when the start-up hook already did it
    return dict(rl_zoo3.utils.ALGOS)


def validate_grid(cells: Sequence[GridCell]) -> None:
    """Raise a ValueError, before any run starts, for an unknown algorithm, environment or a duplicate label."""
    import gymnasium as gym

    import sb3_metasaclag  # noqa: F401  (registers the package's environments)

    algos = _zoo_algos()
    labels: dict[str, str] = {}
    for cell in cells:
        if cell.algo not in algos:
            raise ValueError(f"Unknown algorithm {cell.algo!r}: expected one of RL Zoo's {sorted(algos)}")
        if not cell.label or "|" in cell.label:
            raise ValueError(f"A contender label must be a non-empty name without '|', got {cell.label!r}")
        if labels.setdefault(cell.label, cell.algo) != cell.algo:
            raise ValueError(f"Label {cell.label!r} names two algorithms ({labels[cell.label]} and {cell.algo})")
        try:
            gym.spec(cell.env)
        except gym.error.Error as error:
            raise ValueError(f"Unknown environment {cell.env!r}: {error}") from error
        if cell.steps is not None and cell.steps < 1:
            raise ValueError(f"--steps must be >= 1 environment step, got {cell.steps}")
        if cell.eval_freq < 0 or cell.eval_episodes < 1 or cell.final_eval_episodes < 0:
            raise ValueError(
                "--eval-freq must be >= 0 (0: no evaluation during training), --eval-episodes >= 1 and "
                f"--final-eval-episodes >= 0; got {cell.eval_freq}, {cell.eval_episodes}, {cell.final_eval_episodes}"
            )


def open_storage(url: str, heartbeat_interval: int = 60, grace_period: int | None = None) -> Any:
    """An Optuna RDB storage with heartbeats (a run whose worker died is failed, then retried up to 3 times).

    :param url: An SQLAlchemy URL: ``sqlite:///runs/exp.db`` on one machine, ``postgresql://user:password@host/db``
        or ``mysql+pymysql://...`` across machines.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # fail_stale_trials and the heartbeat are "experimental" in Optuna's terms, and stable since 2.9.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if "://" not in url:
        raise ValueError(
            f"--storage must be a database URL such as sqlite:///runs/exp.db or postgresql://user@host/db, got {url!r}"
        )
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        directory = os.path.dirname(os.path.abspath(url[len("sqlite:///") :]))
        os.makedirs(directory, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}  # wait for another worker's write lock instead of failing
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = RDBStorage(
            url,
            heartbeat_interval=int(heartbeat_interval),
            grace_period=int(grace_period if grace_period is not None else 2 * heartbeat_interval),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            engine_kwargs=engine_kwargs,
        )
    except Exception as error:  # SQLAlchemy's ArgumentError, OperationalError, a missing driver (ModuleNotFoundError)
        raise ValueError(f"Cannot open the storage {url!r}: {type(error).__name__}: {error}") from error
    if sqlite:
        _serialize_sqlite_transactions(storage.engine)
    return storage


def _serialize_sqlite_transactions(engine: Any) -> None:
    """Make every transaction on a SQLite storage begin with ``BEGIN IMMEDIATE``.

    Optuna claims a waiting trial by reading it ``FOR UPDATE`` and marking it running. SQLite ignores ``FOR UPDATE``,
    and Python's ``sqlite3`` begins a transaction only at the first write, so two workers could both read the same trial
    as waiting and both run it (seen in CI: one cell trained twice, then "Cannot tell a COMPLETE trial"). With the
    write lock taken when each transaction begins, the read and the write of a claim are one atomic step.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below issues the BEGIN

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while the tables were created reconnect with the listeners


def load_study(storage: Any, study_name: str, create: bool = False) -> Any:
    import optuna

    if create:
        return optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True, direction="maximize")
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as error:
        names = [summary.study_name for summary in optuna.get_all_study_summaries(storage)]
        raise ValueError(f"No study {study_name!r} in this storage; it has {names}") from error


def _cell_keys(study: Any, states: Sequence[Any]) -> dict[str, int]:
    """Grid key -> number of trials of the study in one of ``states``."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False, states=tuple(states)):
        key = trial.user_attrs.get("key")
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


def enqueue_grid(study: Any, cells: Sequence[GridCell]) -> int:
    """Enqueue every cell that has neither a finished (COMPLETE) nor a pending (WAITING, RUNNING) trial; return how many
    were enqueued. Fails stale trials first, so that the runs of dead workers are queued again (once)."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    fail_stale_trials(study)
    present = _cell_keys(study, (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING))
    added = 0
    for cell in cells:
        if cell.key not in present:
            study.enqueue_trial({}, user_attrs={"key": cell.key, "config": json.dumps(cell.to_dict())})
            added += 1
    return added


# ----------------------------------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------------------------------


def _zoo_arguments(cell: GridCell, log_folder: str) -> argparse.Namespace:
    """The namespace ``rl_zoo3.train`` would build for this run (saved by RL Zoo as ``args.yml``)."""
    return argparse.Namespace(
        algo=cell.algo,
        env=cell.env,
        seed=cell.seed,
        n_timesteps=cell.steps or -1,
        hyperparams=cell.params,
        env_kwargs=cell.env_kwargs,
        log_folder=log_folder,
        eval_freq=cell.eval_freq,
        eval_episodes=cell.eval_episodes,
        tensorboard_log="",
        trained_agent="",
        conf_file=None,
        label=cell.label,
    )


def run_cell(cell: GridCell, log_dir: str, progress: Any = None, verbose: int = 0) -> dict[str, Any]:
    """Train one cell as ``python -m rl_zoo3.train --algo A --env E --seed S`` would (RL Zoo's ``ExperimentManager``:
    the package's ``hyperparams/<algo>.yml``, RL Zoo's own for stock SAC, its wrappers, ``n_timesteps`` unless
    ``steps``), log under ``log_dir/<label>/`` in RL Zoo's layout, then evaluate the final policy.

    Next to RL Zoo's files (model, monitor CSV with cost columns, ``evaluations.npz`` with costs) the run directory gets
    ``outer_values.csv`` (``epsilon``, ``alpha``, ``nu`` after every update) and ``episodes.csv`` (per training episode:
    return, cost, violating steps and the task's end-of-episode metrics such as success).

    :param progress: Called with the number of environment steps done, about every 2 % of the run.
    :return: The outcome (:data:`OUTCOME_KEYS`) and ``log_path``.
    """
    import gymnasium as gym
    import numpy as np
    from rl_zoo3.exp_manager import ExperimentManager
    from stable_baselines3.common.callbacks import BaseCallback

    from sb3_metasaclag.common.callbacks import (
        EpisodeRecorderCallback,
        OuterValuesCallback,
        SafetyHistoryCallback,
        outer_values,
    )
    from sb3_metasaclag.common.evaluation import evaluate_safe_policy

    _zoo_algos()
    log_folder = os.path.join(log_dir, cell.label)
    manager = ExperimentManager(
        _zoo_arguments(cell, log_folder),
        cell.algo,
        cell.env,
        log_folder,
        n_timesteps=cell.steps or 0,
        eval_freq=cell.eval_freq if cell.eval_freq > 0 else -1,
        n_eval_episodes=cell.eval_episodes,
        hyperparams=dict(cell.params),
        env_kwargs=dict(cell.env_kwargs),
        seed=cell.seed,
        verbose=verbose,
        uuid_str=f"_seed{cell.seed}_{uuid.uuid4().hex[:8]}",
        log_interval=-1,
    )
    setup = manager.setup_experiment()
    assert setup is not None
    model, _ = setup
    history = SafetyHistoryCallback()
    episodes = EpisodeRecorderCallback(os.path.join(manager.save_path, "episodes.csv"), EPISODE_INFO_KEYS)
    outer = OuterValuesCallback(os.path.join(manager.save_path, "outer_values.csv"))
    total = int(manager.n_timesteps)

    class _Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.every = max(total // 50, 1)

        def _on_step(self) -> bool:
            if progress is not None and self.num_timesteps % self.every == 0:
                progress(self.num_timesteps, total)
            return True

    manager.callbacks.extend([history, episodes, outer, _Progress()])
    start = time.perf_counter()
    manager.learn(model)
    wall = time.perf_counter() - start
    manager.save_trained_model(model)
    outcome: dict[str, Any] = {"log_path": manager.save_path}
    if cell.final_eval_episodes > 0:
        # The training env's wrappers (e.g. HardConstraint) and observation normalisation apply to the evaluation too.
        eval_env = gym.make(cell.env, **cell.env_kwargs)
        if manager.env_wrapper is not None:
            eval_env = manager.env_wrapper(eval_env)
        final = evaluate_safe_policy(_NormalizedPolicy(model), eval_env, cell.final_eval_episodes)
    else:
        final = {key: math.nan for key in ("return", "success", "violation", "cost")}
    values = outer_values(model)
    violations = np.asarray(history.history["violations"])
    late = _last_quarter(os.path.join(manager.save_path, "outer_values.csv"), "epsilon", model.num_timesteps)
    outcome.update(
        eval_return=final["return"],
        eval_success=final["success"],
        eval_violation_rate=final["violation"],
        eval_cost=final["cost"],
        training_violating_episodes=int((violations > 0).sum()),
        training_episodes=len(violations),
        final_epsilon=values["epsilon"],
        final_alpha=values["alpha"],
        final_nu=values["nu"],
        epsilon_range_last_quarter=(max(late) - min(late)) if late else math.nan,
        greedy_distance=greedy_distance(_NormalizedPolicy(model), cell.env, cell.env_kwargs, cell.final_eval_episodes),
        wall_seconds=round(wall, 2),
        steps_per_second=round(model.num_timesteps / wall, 2) if wall > 0 else math.nan,
    )
    return outcome


def _last_quarter(path: str, column: str, total: int) -> list[float]:
    """The finite values of ``column`` in a CSV of the run (``timestep`` first) recorded in the last quarter of ``total``
    environment steps."""
    import csv

    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    values = [float(row[column]) for row in rows if float(row["timestep"]) >= 0.75 * total]
    return [value for value in values if math.isfinite(value)]


def greedy_distance(policy: Any, env_id: str, env_kwargs: dict[str, Any], n_episodes: int, seed: int = 10_000) -> float:
    """Mean distance of the deterministic action to the task's constrained optimum ``a*``, over ``n_episodes`` reset
    observations, for tasks that know ``a*`` in closed form (the bandits' ``constrained_optimum``); NaN for the others."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id, **env_kwargs)
    if not hasattr(env.unwrapped, "constrained_optimum") or n_episodes < 1:
        env.close()
        return math.nan
    distances = []
    for episode in range(n_episodes):
        observation, _ = env.reset(seed=seed + episode)
        action, _ = policy.predict(observation, deterministic=True)
        distances.append(abs(float(np.clip(np.asarray(action).ravel()[0], -1, 1)) - env.unwrapped.constrained_optimum))
    env.close()
    return float(np.mean(distances))


class _NormalizedPolicy:
    """``model.predict`` on raw observations, normalised first when the model was trained under ``VecNormalize``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.normalizer = model.get_vec_normalize_env()

    def predict(self, observation: Any, deterministic: bool = True) -> Any:
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        return self.model.predict(observation, deterministic=deterministic)


# ----------------------------------------------------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------------------------------------------------


def _objective_factory(study: Any, log_dir: str, verbose: int) -> Any:
    import optuna
    from optuna.trial import TrialState

    def objective(trial: Any) -> float:
        key = trial.user_attrs.get("key")
        if key is None:  # the queue was empty when this worker asked: nothing to do
            trial.set_user_attr("idle", True)
            raise optuna.TrialPruned("no waiting run")
        others = [
            other
            for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
            if other.user_attrs.get("key") == key and other.number != trial.number
        ]
        if any(other.state == TrialState.COMPLETE or other.number < trial.number for other in others):
            trial.set_user_attr("duplicate", True)  # enqueued twice by two commands started at the same time
            raise optuna.TrialPruned(f"{key} is done or running elsewhere")
        cell = GridCell.from_dict(json.loads(trial.user_attrs["config"]))
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")

        def progress(steps: int, total: int) -> None:
            trial.set_user_attr("steps", int(steps))
            trial.set_user_attr("total_steps", int(total))

        if verbose > 0:
            outcome = run_cell(cell, log_dir, progress=progress, verbose=verbose)
        else:  # RL Zoo prints its evaluations and paths: the progress display of the command replaces them
            with contextlib.redirect_stdout(io.StringIO()):
                outcome = run_cell(cell, log_dir, progress=progress, verbose=verbose)
        for name, value in outcome.items():
            trial.set_user_attr(name, value)
        value = float(outcome["eval_return"])
        return value if math.isfinite(value) else -math.inf

    return objective


def worker(
    storage_url: str, study_name: str, log_dir: str, heartbeat_interval: int, grace_period: int | None, verbose: int
) -> int:
    """Run waiting trials of the study until none is left; return how many this worker finished."""
    import torch as th
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    th.set_num_threads(1)
    storage = open_storage(storage_url, heartbeat_interval, grace_period)
    study = load_study(storage, study_name)
    objective = _objective_factory(study, log_dir, verbose)
    done = 0
    while True:
        fail_stale_trials(study)
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return done
        study.optimize(objective, n_trials=1, catch=())
        done += 1


def _worker_main(args: tuple) -> int:
    return worker(*args)


def grid_status(study: Any, cells: Sequence[GridCell]) -> tuple[int, list[str]]:
    """Finished cells of ``cells`` and one line per running trial (label, env, seed, steps done)."""
    from optuna.trial import TrialState

    keys = {cell.key for cell in cells}
    finished = set(_cell_keys(study, (TrialState.COMPLETE,))) & keys
    running = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        key = trial.user_attrs.get("key")
        if key in keys:
            label, env, seed, _ = key.split("|")
            steps, total = trial.user_attrs.get("steps", 0), trial.user_attrs.get("total_steps", "?")
            running.append(f"{label} on {env}, seed {seed}: {steps}/{total} steps")
    return len(finished), running


def run_grid(
    cells: Sequence[GridCell],
    storage_url: str,
    study_name: str,
    log_dir: str,
    workers: int = 1,
    heartbeat_interval: int = 60,
    grace_period: int | None = None,
    verbose: int = 0,
    poll_seconds: float = 5.0,
    echo: Any = print,
) -> dict[str, int]:
    """Enqueue the grid in the study and run it on ``workers`` local processes (one torch thread each), printing the
    progress; return the counts of finished and failed cells. Other machines may run the same grid at the same time.
    """
    from optuna.trial import TrialState

    validate_grid(cells)
    storage = open_storage(storage_url, heartbeat_interval, grace_period)
    study = load_study(storage, study_name, create=True)
    added = enqueue_grid(study, cells)
    finished, _ = grid_status(study, cells)
    echo(f"study {study_name!r}: {len(cells)} runs, {finished} already finished, {added} queued now")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    arguments = (storage_url, study_name, log_dir, heartbeat_interval, grace_period, verbose)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker, args=arguments, daemon=False) for _ in range(workers)]
    for process in processes:
        process.start()
    last = None
    try:
        while any(process.is_alive() for process in processes):
            status = grid_status(study, cells)
            if status != last:
                done, running = status
                echo(f"[{time.strftime('%H:%M:%S')}] {done}/{len(cells)} runs done" + "".join(f"; {r}" for r in running))
                last = status
            time.sleep(poll_seconds)
    finally:
        for process in processes:
            process.join()
    done, _ = grid_status(study, cells)
    failed = set(_cell_keys(study, (TrialState.FAIL,))) - set(_cell_keys(study, (TrialState.COMPLETE,)))
    failed &= {cell.key for cell in cells}
    echo(f"{done}/{len(cells)} runs done" + (f", {len(failed)} failed (run the command again to retry)" if failed else ""))
    codes = [process.exitcode for process in processes]
    if any(code != 0 for code in codes):
        echo(f"worker exit codes: {codes}")
    return {"finished": done, "failed": len(failed), "total": len(cells)}


def completed_runs(study: Any) -> list[dict[str, Any]]:
    """The finished runs of a study: their configuration and outcome, one dict per run (duplicates dropped)."""
    from optuna.trial import TrialState

    runs: dict[str, dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        if "key" not in attrs or attrs["key"] in runs:
            continue
        runs[attrs["key"]] = {**json.loads(attrs["config"]), **{k: attrs.get(k) for k in (*OUTCOME_KEYS, "log_path")}}
    return list(runs.values())
