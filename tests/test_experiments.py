"""The experiment runner: grids in an Optuna study, worker processes, retries, figures, RL Zoo's tools."""

import glob
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import optuna
import pytest
from optuna.trial import TrialState

from sb3_metasaclag.experiments import Contender, completed_runs, grid_cells, plot_runs, run_grid, validate_grid
from sb3_metasaclag.experiments.__main__ import main
from sb3_metasaclag.experiments.grid import enqueue_grid, load_study, open_storage, worker

TINY = dict(learning_starts=50, batch_size=32, policy_kwargs="dict(net_arch=[16])")
FAST = dict(eval_freq=100, eval_episodes=2, final_eval_episodes=3)


def _quiet(*args):
    pass


def _trials_by_key(storage_url, study):
    trials = optuna.load_study(study_name=study, storage=storage_url).get_trials(deepcopy=False)
    by_key = {}
    for trial in trials:
        if "key" in trial.user_attrs:
            by_key.setdefault(trial.user_attrs["key"], []).append(trial)
    return by_key


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    """A 2 algorithms x 2 seeds grid run by 2 worker processes sharing one SQLite file."""
    root = tmp_path_factory.mktemp("grid")
    storage = f"sqlite:///{root / 'exp.db'}"
    contenders = [Contender("saclag", "saclag"), Contender("meta", "metasaclag", {"outer_rule_kwargs": {"meta_interval": 5}})]
    cells = grid_cells(contenders, ["SafeBandit-v0"], [0, 1], steps=200, params=TINY, **FAST)
    result = run_grid(cells, storage, "small", str(root / "logs"), workers=2, poll_seconds=0.5, echo=_quiet)
    return root, storage, cells, result


def test_grid_on_two_workers_runs_every_cell_exactly_once(small_grid):
    root, storage, cells, result = small_grid
    assert result == {"finished": 4, "failed": 0, "total": 4}
    by_key = _trials_by_key(storage, "small")
    assert set(by_key) == {cell.key for cell in cells}
    for trials in by_key.values():
        assert [trial.state for trial in trials] == [TrialState.COMPLETE]
    # One RL Zoo run directory per cell, in RL Zoo's layout: LOG_DIR/<label>/<algo>/<env>_<n>_...
    run_dirs = glob.glob(str(root / "logs" / "*" / "*" / "SafeBandit-v0_*"))
    assert len(run_dirs) == 4
    workers = {trial.user_attrs["worker"] for trials in by_key.values() for trial in trials}
    assert len(workers) == 2  # both processes took runs
    for run in completed_runs(optuna.load_study(study_name="small", storage=storage)):
        assert run["log_path"] in run_dirs
        for name in ("SafeBandit-v0.zip", "0.monitor.csv", "evaluations.npz", "outer_values.csv", "episodes.csv"):
            assert os.path.exists(os.path.join(run["log_path"], name)), name
        assert run["training_episodes"] == 200  # the bandit's episodes last one step
        assert 0 <= run["eval_violation_rate"] <= 1 and run["steps_per_second"] > 0
        assert run["final_nu"] >= 0 and 0 < run["final_alpha"] <= 1
        # The bandit knows its constrained optimum: the greedy action's distance to it; epsilon fixed for SACLag.
        assert 0 <= run["greedy_distance"] <= 2
        assert run["epsilon_range_last_quarter"] == 0.0 if run["label"] == "saclag" else run["epsilon_range_last_quarter"] >= 0


def test_running_the_command_again_redoes_nothing(small_grid):
    root, storage, cells, _ = small_grid
    before = {key: [t.number for t in trials] for key, trials in _trials_by_key(storage, "small").items()}
    result = run_grid(cells, storage, "small", str(root / "logs"), workers=1, poll_seconds=0.5, echo=_quiet)
    assert result["finished"] == 4
    after = {key: [t.number for t in trials] for key, trials in _trials_by_key(storage, "small").items()}
    assert after == before


def test_grid_files_describe_the_same_cells_as_the_command_line(tmp_path, capsys):
    from sb3_metasaclag.experiments.grid import grid_file_cells

    path = tmp_path / "grid.yml"
    path.write_text(
        "grids:\n"
        "  - envs: [SafeBandit-v0]\n"
        "    seeds: [0, 1]\n"
        "    steps: 200\n"
        "    params: {learning_starts: 50}\n"
        "    contenders:\n"
        "      - {algo: saclag}\n"
        "      - {label: meta, algo: metasaclag, params: {outer_rule: paper}}\n"
        "  - envs: [SafeCircle-v0]\n"
        "    contenders: [{algo: sac}]\n"
    )
    cells = grid_file_cells(str(path))
    expected = grid_cells(
        [Contender("saclag", "saclag"), Contender("meta", "metasaclag", {"outer_rule": "paper"})],
        ["SafeBandit-v0"],
        [0, 1],
        steps=200,
        params={"learning_starts": 50},
    ) + grid_cells([Contender("sac", "sac")], ["SafeCircle-v0"], [0])
    assert [cell.key for cell in cells] == [cell.key for cell in expected]
    # The repository's outer-loop grids: 4 bandits x 8 contenders, and 4 tasks x 4 contenders, 3 seeds each.
    folder = os.path.join(os.path.dirname(__file__), "..", "experiments")
    bandits = grid_file_cells(os.path.join(folder, "outer_loop_bandits.yml"))
    tasks = grid_file_cells(os.path.join(folder, "outer_loop_tasks.yml"))
    validate_grid(bandits + tasks)
    assert (len(bandits), len(tasks)) == (3 * 4 * 8, 3 * 4 * 4)
    path.write_text("envs: [SafeBandit-v0]\ncontenders: [{algo: sac}]\nbudget: 100\n")
    with pytest.raises(ValueError, match=r"unknown keys \['budget'\]"):
        grid_file_cells(str(path))
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--grid", str(path), "--algos", "sac", "--storage", storage, "--study", "s"]) == 2
    assert "give --grid or --algos" in capsys.readouterr().err


def test_plot_writes_fig2_and_a_summary_row_per_algorithm(small_grid, tmp_path):
    _, storage, _, _ = small_grid
    assert main(["plot", "--storage", storage, "--study", "small", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fig2.png").stat().st_size > 10_000
    summary = (tmp_path / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and not line.startswith(("| contender", "| ---"))]
    assert sorted(row.split(" | ")[0] for row in rows) == ["| meta", "| saclag"]
    assert all(row.split(" | ")[1] == "0, 1" for row in rows)  # two seeds each
    assert not (tmp_path / "fig3.png").exists()  # no Pour Coffee run


def test_logs_are_read_by_rl_zoo_plotting_scripts(small_grid, tmp_path):
    root, _, _, _ = small_grid
    environ = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    logs = str(root / "logs" / "saclag")
    commands = [
        ["-m", "rl_zoo3.plots.plot_train", "-a", "saclag", "-e", "SafeBandit-v0", "-f", logs, "-w", "10"],
        # Evaluation costs, with RL Zoo's own script: `-k costs` reads the array SafeEvalCallback adds.
        ["-m", "rl_zoo3.plots.all_plots", "-a", "saclag", "-e", "SafeBandit-v0", "-f", logs, "-k", "costs"]
        + ["-o", str(tmp_path / "costs")],
    ]
    for command in commands:
        result = subprocess.run([sys.executable, *command], env=environ, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "costs.pkl").exists()


def _claim_all_waiting(storage_url, queue):
    """Claim (ask) and finish (tell) waiting trials as fast as possible until none is left; report their numbers."""
    study = load_study(open_storage(storage_url), "race")
    claimed = []
    try:
        while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial = study.ask()
            claimed.append(trial.number)
            study.tell(trial, 0.0)
    except Exception as error:  # a trial another worker had claimed too: "Cannot tell a COMPLETE trial"
        queue.put(repr(error))
        return
    queue.put(claimed)


def test_workers_on_sqlite_never_claim_the_same_trial(tmp_path):
    # SQLite ignores SELECT ... FOR UPDATE: without open_storage's BEGIN IMMEDIATE, three workers racing for 150 waiting
    # trials claimed some twice and failed with "Cannot tell a COMPLETE trial" (the CI failure this test pins).
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(storage))
    for index in range(150):
        study.enqueue_trial({"index": index})
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_claim_all_waiting, args=(storage, queue)) for _ in range(3)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert all(isinstance(result, list) for result in results), results
    claimed = [number for result in results for number in result]
    assert len(claimed) == len(set(claimed)) >= 150
    assert {trial.number for trial in study.get_trials(states=(TrialState.COMPLETE,))} >= set(range(150))


def _start_worker(storage, study, log_dir):
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=worker, args=(storage, study, log_dir, 1, 2, 0))
    process.start()
    return process


def test_a_killed_worker_leaves_its_run_to_the_next_command(tmp_path):
    _check_killed_worker_is_retried(f"sqlite:///{tmp_path / 'exp.db'}", "kill", str(tmp_path / "logs"))


def _check_killed_worker_is_retried(storage: str, name: str, log_dir: str) -> None:
    """A worker killed in the middle of a run leaves that run to the next command, which retries it once; a finished
    run is not redone."""
    short = grid_cells([Contender("sac", "sac")], ["SafeBandit-v0"], [0], steps=150, params=TINY, **FAST)
    # The long run does no gradient step before 1,200 environment steps: it is slow enough to be killed midway.
    long = grid_cells(
        [Contender("sac", "sac")], ["SafeBandit-v0"], [1], steps=1_300, params={**TINY, "learning_starts": 1_200}, **FAST
    )
    run_grid(short, storage, name, log_dir, workers=1, heartbeat_interval=1, grace_period=2, echo=_quiet)
    (finished,) = _trials_by_key(storage, name)[short[0].key]

    study = load_study(open_storage(storage, 1, 2), name)
    assert enqueue_grid(study, short + long) == 1  # the finished run is not queued again
    process = _start_worker(storage, name, log_dir)
    deadline = time.time() + 240
    while time.time() < deadline:
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.user_attrs.get("steps", 0) > 0]
        if running:
            break
        time.sleep(0.5)
    assert running, "the worker never started the long run"
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    time.sleep(3)  # longer than the grace period: the killed run's heartbeat is stale

    result = run_grid(short + long, storage, name, log_dir, workers=1, heartbeat_interval=1, grace_period=2, echo=_quiet)
    assert result == {"finished": 2, "failed": 0, "total": 2}
    by_key = _trials_by_key(storage, name)
    assert [t.number for t in by_key[short[0].key]] == [finished.number]  # not redone
    states = sorted(t.state.name for t in by_key[long[0].key])
    assert states == ["COMPLETE", "FAIL"]  # the killed attempt, then the retry


def test_bad_algorithm_environment_or_storage_fail_before_any_run(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'exp.db'}"
    base = ["run", "--envs", "SafeBandit-v0", "--storage", storage, "--study", "s", "--log-dir", str(tmp_path / "logs")]
    assert main([*base, "--algos", "not_an_algo"]) == 2
    assert "Unknown algorithm 'not_an_algo'" in capsys.readouterr().err
    assert main(["run", "--algos", "sac", "--envs", "NoSuchEnv-v9", *base[3:]]) == 2
    assert "Unknown environment 'NoSuchEnv-v9'" in capsys.readouterr().err
    assert main(["run", "--algos", "sac", "--envs", "SafeBandit-v0", "--storage", "runs.db", "--study", "s"]) == 2
    assert "--storage must be a database URL" in capsys.readouterr().err
    assert main(["run", "--algos", "sac", "--envs", "SafeBandit-v0", "--storage", "nosuchdb://x", "--study", "s"]) == 2
    assert "Cannot open the storage" in capsys.readouterr().err
    assert main(["run", "--contender", "x", "--envs", "SafeBandit-v0", "--storage", storage, "--study", "s"]) == 2
    assert "LABEL ALGO" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()
    with pytest.raises(ValueError, match=r"without '\|'"):
        validate_grid(grid_cells([Contender("a|b", "sac")], ["SafeBandit-v0"], [0]))
    with pytest.raises(ValueError, match="names two algorithms"):
        validate_grid(grid_cells([Contender("a", "sac"), Contender("a", "saclag")], ["SafeBandit-v0"], [0]))


def test_summary_and_fig3_for_pour_coffee_settings(tmp_path):
    """Fig. 3 groups runs by Table 2 setting; built here from synthetic curves (a real run needs PyBullet and minutes)."""
    import numpy as np

    runs = []
    for setting in (2, 3):
        for seed in (0, 1):
            log = tmp_path / f"s{setting}_{seed}"
            log.mkdir()
            rows = ["timestep,return,length,cost,violations,success,ee_acceleration_mean,ee_jerk_mean"]
            rows += [f"{200 * i},1.0,200,0.0,0,{i % 2},{3.0 - setting / 2},{40.0 - setting}" for i in range(1, 30)]
            (log / "episodes.csv").write_text("\n".join(rows) + "\n")
            np.savez(log / "evaluations.npz", timesteps=[1000, 2000], results=[[1.0], [2.0]], costs=[[0.0], [1.0]])
            runs.append(
                dict(label="metasaclag", algo="metasaclag", env="SafePourCoffee-v0", seed=seed, steps=6000,
                     env_kwargs={"setting": setting}, log_path=str(log), eval_return=1.0, eval_success=0.5,
                     eval_violation_rate=0.0, training_violating_episodes=0, final_epsilon=0.2, final_alpha=0.1,
                     final_nu=3.0, wall_seconds=60.0, steps_per_second=100.0)
            )  # fmt: skip
    written = plot_runs(runs, str(tmp_path / "out"))
    assert [os.path.basename(path) for path in written] == ["summary.md", "fig2.png", "fig3.png"]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| metasaclag (setting=2) | 0, 1 |" in summary and "| metasaclag (setting=3) | 0, 1 |" in summary


def _postgres_programs() -> tuple[str, str]:
    """``initdb`` and ``pg_ctl``: from PATH, else the server that the ``pgserver`` wheel ships (``make install``)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    import pgserver

    bin_dir = os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin")
    return os.path.join(bin_dir, "initdb"), os.path.join(bin_dir, "pg_ctl")


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server on a private Unix socket (no TCP), started for this module and stopped after it."""
    initdb, pg_ctl = _postgres_programs()
    # Not under tmp_path: pytest's temporary directories are private to the user running the tests.
    server_dir = tempfile.mkdtemp(prefix="sb3-metasaclag-pg-")
    data, sockets = os.path.join(server_dir, "data"), os.path.join(server_dir, "sock")
    os.mkdir(sockets)
    prefix = []
    if os.geteuid() == 0:  # the server refuses to run as root
        prefix = ["runuser", "-u", "nobody", "--"]
        os.chmod(server_dir, 0o777)
        shutil.chown(sockets, "nobody")
    user = "nobody" if prefix else os.environ.get("USER", "postgres")
    subprocess.run([*prefix, initdb, "-D", data, "-A", "trust", "-U", user],
                   check=True, capture_output=True, cwd=server_dir)  # fmt: skip
    port = 54000 + os.getpid() % 1000
    options = f"-k {sockets} -p {port} -c listen_addresses=''"
    subprocess.run([*prefix, pg_ctl, "-D", data, "-o", options, "-w", "-l", os.path.join(server_dir, "pg.log"), "start"],
                   check=True, capture_output=True, cwd=server_dir)  # fmt: skip
    try:
        yield f"postgresql://{user}@/postgres?host={sockets}&port={port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "fast", "stop"], capture_output=True, cwd=server_dir)
        shutil.rmtree(server_dir, ignore_errors=True)


def test_grid_on_a_postgresql_server(postgres_url, tmp_path):
    """Two worker processes share a grid through a real PostgreSQL server: every cell runs once, both take runs."""
    cells = grid_cells([Contender("sac", "sac"), Contender("saclag", "saclag")], ["SafeBandit-v0"], [0, 1],
                       steps=150, params=TINY, **FAST)  # fmt: skip
    result = run_grid(cells, postgres_url, "pg", str(tmp_path / "logs"), workers=2, poll_seconds=0.5, echo=_quiet)
    assert result == {"finished": 4, "failed": 0, "total": 4}
    by_key = _trials_by_key(postgres_url, "pg")
    assert set(by_key) == {cell.key for cell in cells}
    assert all([t.state for t in trials] == [TrialState.COMPLETE] for trials in by_key.values())
    assert len({t.user_attrs["worker"] for trials in by_key.values() for t in trials}) == 2


def test_a_killed_worker_on_postgresql_leaves_its_run_to_the_next_command(postgres_url, tmp_path):
    _check_killed_worker_is_retried(postgres_url, "pg-kill", str(tmp_path / "logs"))
