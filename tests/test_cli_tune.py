"""`fastnn tune`: its options, dask and the scheduler are checked before the search; no search runs here."""

import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fastnn import tune as tune_module
from fastnn.cli import main
from fastnn.commands import tune as tune_command
from fastnn.tune import cluster as cluster_module


class SearchStarted(Exception):
    pass


@pytest.fixture
def no_search(monkeypatch):
    """The search itself, replaced: records its arguments and stops the command there."""
    calls = []

    def search(**kwargs):
        calls.append(kwargs)
        raise SearchStarted

    monkeypatch.setattr(tune_module, "coarse_to_fine", search)
    monkeypatch.setattr(tune_module, "random_search", search)
    return calls


def test_without_dask_it_says_how_to_get_it_before_anything(tmp_path, monkeypatch, capsys, no_search):
    """It printed its header, then an ImportError traceback from the search."""
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(SystemExit, match=r"fastnn tune: the search runs on dask.distributed, which is not installed: "
                                         r"pip install 'fastnn\[tune\]'"):
        main(["tune", "--out", str(tmp_path / "out"), "--workers", "1"])
    assert capsys.readouterr().out == "" and not (tmp_path / "out").exists() and no_search == []


@pytest.mark.parametrize("address, reason", [
    ("notanaddress", r"ValueError: missing port number in address 'notanaddress'"),
    ("tcp://127.0.0.1:1", r"OSError: Timed out trying to connect to tcp://127.0.0.1:1 after 1 s"),
])
def test_a_scheduler_it_cannot_reach_is_a_message(address, reason, tmp_path, monkeypatch, capsys, no_search):
    """A ValueError traceback at once, or an OSError traceback after dask's 30 s connect timeout."""
    monkeypatch.setattr(tune_command, "CONNECT_TIMEOUT", 1)
    with pytest.raises(SystemExit, match=rf"fastnn tune: cannot connect to --scheduler '{address}' \({reason}\); "):
        main(["tune", "--scheduler", address, "--out", str(tmp_path / "out")])
    assert capsys.readouterr().out == "" and not (tmp_path / "out").exists() and no_search == []


def test_the_default_workers_are_the_cpus_the_process_may_use(tmp_path, monkeypatch, capsys, no_search):
    """os.cpu_count() ignored the CPU affinity: under `taskset -c 1` it started 2 workers on one CPU."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1}, raising=False)
    with pytest.raises(SearchStarted):
        main(["tune", "--out", str(tmp_path / "out"), "--quiet"])
    assert [call["n_workers"] for call in no_search] == [1]
    assert "on a LocalCluster of 1 worker process\n" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--out", ""], "--out must name a directory, got an empty string"),
    (["--seed", "-1"], r"--seed must be an integer in \[0, 2\*\*32 - 1\], got -1"),
    (["--seed", str(2**32)], rf"--seed must be an integer in \[0, 2\*\*32 - 1\], got {2**32}"),
    (["--fine-trials", "0", "--top-k", "5"], "--top-k chooses what the fine round narrows to, and --fine-trials 0"),
    (["--top-k", "0"], "--top-k must be >= 1, got 0"),
    (["--workers", "100000"], r"--workers must be at most \d+ \(8 per CPU this process may use; each worker is a "
                              r"process\), got 100000"),  # took 7 GB, started no worker and held Ctrl-C off
])
def test_bad_options_are_messages(argv, message, tmp_path, monkeypatch, no_search):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=f"fastnn tune: {message}"):
        main(["tune", "--workers", "1", *argv])
    assert os.listdir(tmp_path) == [] and no_search == []


@pytest.mark.parametrize("argv", [["--scheduler", ""], ["--scheduler", "", "--workers", "2"]])
def test_an_empty_scheduler_is_refused(argv, tmp_path, monkeypatch, no_search):
    """An empty --scheduler was taken as none given and a LocalCluster ran; with --workers it was told to give
    one or the other."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^fastnn tune: --scheduler must name a running scheduler "
                                         r"\(tcp://HOST:8786\), got an empty string$"):
        main(["tune", *argv])
    assert os.listdir(tmp_path) == [] and no_search == []


class _Result:
    """A finished search whose save writes results.json and then meets `stop` (None: writes the rest)."""

    best = None

    def __init__(self, stop=None, best=None):
        self.stop, self.best = stop, best

    def table(self):
        return "the table"

    def save(self, out):
        with open(os.path.join(out, "results.json"), "w") as f:
            f.write("the new search")
        if self.stop is not None:
            raise self.stop
        for name in ("results.csv", "scatter.png"):
            with open(os.path.join(out, name), "w") as f:
                f.write("the new search")
        return {"json": os.path.join(out, "results.json"), "skipped": ["best.npz: no trial succeeded"]}


EARLIER = {"results.json": "earlier", "results.csv": "earlier", "scatter.png": "earlier", "best.npz": "earlier"}


def _earlier_search(out):
    out.mkdir()
    (out / ".fastnn-tune").write_text("fastnn tune, process 1\n")
    for name, text in EARLIER.items():
        (out / name).write_text(text)


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_a_search_whose_save_stops_keeps_the_earlier_one_and_says_where_the_new_one_is(stop, tmp_path, monkeypatch,
                                                                                      capsys):
    """The earlier search's files were removed before the new ones were written: Ctrl-C while saving left neither,
    and the finished search's results went too."""
    out = tmp_path / "out"
    _earlier_search(out)
    monkeypatch.setattr(tune_module, "coarse_to_fine", lambda **kwargs: _Result(stop))
    with pytest.raises(KeyboardInterrupt if isinstance(stop, KeyboardInterrupt) else SystemExit):
        main(["tune", "--workers", "1", "--quiet", "--out", str(out), "--overwrite"])
    assert all((out / name).read_text() == text for name, text in EARLIER.items())
    staged = [name for name in os.listdir(out) if name.startswith(".fastnn-tune-new-")]
    assert len(staged) == 1 and os.listdir(out / staged[0]) == ["results.json"]
    assert f"the search's results written so far are in '{out / staged[0]}'" in capsys.readouterr().err


def test_overwrite_replaces_the_earlier_search_once_the_new_one_is_saved(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _earlier_search(out)
    best = type("Trial", (), {"val_acc": 0.9, "index": 3})()
    monkeypatch.setattr(tune_module, "coarse_to_fine", lambda **kwargs: _Result(best=best))
    assert main(["tune", "--workers", "1", "--quiet", "--out", str(out), "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == [".fastnn-tune", "results.csv", "results.json", "scatter.png"]
    assert all((out / name).read_text() == "the new search" for name in os.listdir(out) if name != ".fastnn-tune")
    assert f"wrote {out / 'results.json'}" in capsys.readouterr().out


def test_overwrite_by_a_search_where_no_trial_succeeded_keeps_the_earlier_one(tmp_path, monkeypatch, capsys):
    """It replaced the earlier search, best.npz and all, and exited 1."""
    out = tmp_path / "out"
    _earlier_search(out)
    monkeypatch.setattr(tune_module, "coarse_to_fine", lambda **kwargs: _Result())
    assert main(["tune", "--workers", "1", "--quiet", "--out", str(out), "--overwrite"]) == 1
    assert all((out / name).read_text() == text for name, text in EARLIER.items())
    [staged] = [name for name in os.listdir(out) if name.startswith(".fastnn-tune-new-")]
    assert sorted(os.listdir(out / staged)) == ["results.csv", "results.json", "scatter.png"]
    printed = capsys.readouterr()
    assert (f"fastnn tune: no trial succeeded, so the earlier search in --out '{out}' is kept; this search's "
            f"results are in '{out / staged}'") in printed.err
    assert f"wrote {out / staged / 'results.json'}" in printed.out


def test_the_searchs_warnings_are_the_commands_lines(tmp_path, monkeypatch, capsys):
    """coarse_to_fine's 'no fine round' came out as a Python warning naming a source line of fastnn."""
    import warnings

    def search(**kwargs):
        warnings.warn("coarse_to_fine: every coarse trial failed, so there is no fine round", RuntimeWarning,
                      stacklevel=2)
        warnings.warn("someone else's", UserWarning, stacklevel=2)
        return _Result()

    monkeypatch.setattr(tune_module, "coarse_to_fine", search)
    with pytest.warns(UserWarning, match="someone else's"):
        assert main(["tune", "--workers", "1", "--quiet", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "fastnn tune: every coarse trial failed, so there is no fine round\n" in err and "RuntimeWarning" not in err


def test_a_search_still_running_is_named_so_not_as_an_earlier_run(tmp_path, monkeypatch):
    """A second `fastnn tune --out` of a running search's directory was told it held an earlier run and to pass
    --overwrite, which was then refused."""
    out = tmp_path / "out"
    seen = []

    def search(**kwargs):
        other = subprocess.run([sys.executable, "-m", "fastnn", "tune", "--out", str(out), "--workers", "1"],
                               capture_output=True, text=True, timeout=120)
        seen.append((other.returncode, other.stderr))
        raise SearchStarted

    monkeypatch.setattr(tune_module, "coarse_to_fine", search)
    with pytest.raises(SearchStarted):
        main(["tune", "--out", str(out), "--workers", "1", "--quiet"])
    [(code, err)] = seen
    assert code == 1 and f"fastnn tune: a run is still writing to '{out}'" in err, err


class _Unwritable(io.StringIO):
    """A stdout that takes the header but not the table."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def write(self, text):
        if "the table" in text:
            raise self.error
        return super().write(text)


@pytest.mark.parametrize("error, message", [
    (BrokenPipeError(32, "Broken pipe"), "the reader of its output has gone"),
    (OSError(28, "No space left on device"), r"cannot write its output \(No space left on device\)"),
])
def test_output_that_cannot_be_written_loses_no_results(error, message, tmp_path, monkeypatch, capsys):
    """`fastnn tune | head -1` printed the table before saving: the print met the closed pipe, nothing was saved,
    and a rerun was refused as --out holding an earlier run. `> /dev/full` ended in an OSError traceback."""
    from fastnn import cli

    out = tmp_path / "out"
    monkeypatch.setattr(tune_module, "coarse_to_fine", lambda **kwargs: _Result())
    monkeypatch.setattr(cli, "_set_up_own_process", lambda: None)  # leaves this test process's malloc alone
    monkeypatch.setattr(sys, "argv", ["fastnn", "tune", "--workers", "1", "--quiet", "--out", str(out)])
    monkeypatch.setattr(sys, "stdout", _Unwritable(error))
    assert main() == 1
    assert re.fullmatch(f"fastnn tune: stopped: {message}\n", capsys.readouterr().err)
    assert sorted(os.listdir(out)) == [".fastnn-tune", "results.csv", "results.json", "scatter.png"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_stdout_that_takes_nothing_is_one_line(tmp_path):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "fastnn", "tune", "--workers", "1", "--out", "out"],
                                stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1
    assert result.stderr == "fastnn tune: stopped: cannot write its output (No space left on device)\n"
    assert os.listdir(tmp_path) == []


def test_a_search_that_fails_leaves_a_directory_the_user_made(tmp_path, no_search):
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(SearchStarted):
        main(["tune", "--workers", "1", "--quiet", "--out", str(mine)])
    assert mine.is_dir() and os.listdir(mine) == []


def test_a_search_holds_its_out_so_an_overwrite_meanwhile_is_refused(tmp_path, monkeypatch):
    """Nothing told a search still running from a finished one: `fastnn tune --overwrite` of its --out meanwhile
    was accepted, and the two searches' results replaced each other."""

    out = tmp_path / "out"
    seen = []

    def search(**kwargs):
        other = subprocess.run([sys.executable, "-c", "import sys; from fastnn.commands import _outputs; "
                                "_outputs.hold(sys.argv[1], 'tune')", str(out)], capture_output=True, text=True,
                               timeout=120)  # what another process's --overwrite meets
        assert other.returncode == 1 and "a run is still writing to" in other.stderr, other.stderr
        seen.append(True)
        raise SearchStarted

    monkeypatch.setattr(tune_module, "random_search", search)
    with pytest.raises(SearchStarted):
        main(["tune", "--out", str(out), "--workers", "1", "--fine-trials", "0", "--quiet"])
    assert seen == [True]
    assert not out.exists()  # a search that stopped releases its claim


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raising KeyboardInterrupt, as in a terminal: a test run in the background of a shell without job
    control (`pytest &` in a script) starts with SIGINT ignored, where Ctrl-C stops nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_that_python_meets_in_a_weakref_callback_still_stops_the_command(monkeypatch, capsys, ctrl_c_raises):
    """Seen in 1 of 10 runs of the Ctrl-C test's reproducer: the KeyboardInterrupt was raised inside a weakref
    callback, Python printed it as "Exception ignored" with a traceback, and the search went on to the end."""
    from fastnn import cli

    class Owner:
        def __del__(self):
            raise KeyboardInterrupt

    def run(args):
        Owner()  # collected at once: its __del__ meets the Ctrl-C
        for _ in range(1000):  # the Ctrl-C, raised again, stops the command here
            time.sleep(0.01)
        return 0

    command = type("Command", (), {"configure": staticmethod(lambda parser: None), "run": staticmethod(run)})
    monkeypatch.setattr(cli, "_command_module", lambda name: command)
    monkeypatch.setattr(sys, "argv", ["fastnn", "check"])
    assert cli.main() == 130
    assert capsys.readouterr().err == "fastnn check: interrupted\n"


def _tune_process(tmp_path, *argv):
    """`python -m fastnn tune` in a session of its own, as a terminal runs it, on the stored numba cache."""
    env = {**os.environ, "FASTNN_CACHE": "1"}
    return subprocess.Popen([sys.executable, "-m", "fastnn", "tune", "--out", "t3", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint)


def _default_sigint():
    """In the child: SIGINT as a terminal's process has it, even where this test run started with it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups")
def test_ctrl_c_in_the_terminal_stops_the_search_with_one_message(tmp_path):
    """A Ctrl-C reaches the whole process group, so the dask workers too: each printed a KeyboardInterrupt
    traceback, and the cluster's shutdown logged closed comms and cancelled tasks around "interrupted"."""
    p = _tune_process(tmp_path, "--epochs", "1", "--trials", "50", "--fine-trials", "0", "--workers", "2")
    seen = b""
    while b"coarse" not in seen:  # the progress bar: the workers are up and have the trials
        chunk = os.read(p.stderr.fileno(), 4096)
        assert chunk, seen.decode()
        seen += chunk
    os.killpg(p.pid, signal.SIGINT)
    _, rest = p.communicate(timeout=120)
    stderr = (seen + rest).decode()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "distributed" not in stderr and "leaked" not in stderr, stderr
    assert stderr.rstrip().endswith("fastnn tune: interrupted")
    assert not (tmp_path / "t3").exists()  # the claim it made is released


def test_train_and_tune_never_share_an_out(tmp_path, monkeypatch, no_search):
    """`fastnn tune --out <a train run>` (even with --overwrite) and `fastnn train --out <a search>` were accepted,
    and the two commands' files ended up mixed in one directory."""
    from fastnn import plots

    monkeypatch.setattr(plots, "available", lambda: False)
    monkeypatch.chdir(tmp_path)
    trained = tmp_path / "trained"
    assert main(["train", "--model", "fc", "--epochs", "1", "--batch-size", "500", "--quiet",
                 "--out", str(trained)]) == 0
    before = sorted(os.listdir(trained))
    for extra in ([], ["--overwrite"]):
        with pytest.raises(SystemExit, match=r"fastnn tune: --out '.*trained' holds a run of fastnn train "
                                             r"\(.fastnn-train\); choose another --out"):
            main(["tune", "--workers", "1", "--quiet", "--out", str(trained), *extra])
    assert sorted(os.listdir(trained)) == before
    searched = tmp_path / "fastnn-out"  # the train command's default, here holding a search's claim
    searched.mkdir()
    (searched / ".fastnn-tune").write_text("fastnn tune, process 1\n")
    with pytest.raises(SystemExit, match=r"fastnn train: --out '.*fastnn-out' holds a run of fastnn tune"):
        main(["train", "--model", "fc", "--epochs", "1", "--quiet", "--out", str(searched), "--overwrite"])
    assert main(["train", "--model", "fc", "--epochs", "1", "--batch-size", "500", "--quiet"]) == 0
    assert os.listdir(searched) == [".fastnn-tune"] and (tmp_path / "fastnn-out-2" / "summary.json").is_file()


def test_a_failed_overwrite_keeps_the_claim_of_the_run_it_leaves_in_place(tmp_path, monkeypatch, no_search):
    """A train --overwrite that failed before training (a bad --init-from) removed .fastnn-train although the
    earlier run stayed, and tune then wrote its results into that run; a failed train --resume of a search's
    directory created a .fastnn-train there."""
    from fastnn import plots

    monkeypatch.setattr(plots, "available", lambda: False)
    trained = tmp_path / "trained"
    fast = ["train", "--model", "fc", "--epochs", "1", "--batch-size", "500", "--quiet"]
    assert main(fast + ["--out", str(trained)]) == 0
    before = sorted(os.listdir(trained))
    with pytest.raises(SystemExit, match="--init-from"):
        main(fast + ["--out", str(trained), "--overwrite", "--init-from", str(tmp_path / "nowhere.npz")])
    assert sorted(os.listdir(trained)) == before
    with pytest.raises(SystemExit, match="holds a run of fastnn train"):
        main(["tune", "--workers", "1", "--quiet", "--out", str(trained)])
    searched = tmp_path / "searched"
    searched.mkdir()
    (searched / ".fastnn-tune").write_text("fastnn tune, process 1\n")
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(searched)])
    assert os.listdir(searched) == [".fastnn-tune"]


def test_a_train_run_that_lost_its_claim_file_is_still_no_place_for_a_search(tmp_path, no_search):
    """A train run copied without its .fastnn-train (cp dir/*) took a search's results beside its own."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "fastnn-run.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"fastnn tune: --out '.*run' holds a run of fastnn train "
                                         r"\(fastnn-run.json\); choose another --out"):
        main(["tune", "--out", str(out), "--workers", "1", "--quiet", "--overwrite"])
    assert sorted(os.listdir(out)) == ["fastnn-run.json"] and no_search == []


def test_a_service_that_accepts_but_never_answers_is_a_message_not_a_hang(tmp_path, monkeypatch, no_search):
    """An HTTP server given as --scheduler held distributed.Client (and the command) forever: it waits for the
    scheduler's handshake without a timeout. A real scheduler answers the probe at once."""
    import socket
    import threading

    import distributed

    monkeypatch.setattr(tune_command, "CONNECT_TIMEOUT", 1)
    silent = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    try:
        with pytest.raises(SystemExit, match=rf"fastnn tune: --scheduler '{address}' accepted a connection but "
                                             r"sent nothing in 1 s, as a dask scheduler does at once"):
            main(["tune", "--scheduler", address, "--out", str(tmp_path / "out")])
    finally:
        silent.close()
    assert not (tmp_path / "out").exists() and no_search == []
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        assert not cluster_module._silent(cluster.scheduler_address, 1)
