"""`fastnn tune`: its options, dask and the scheduler are checked before the search; no search runs here."""

import os
import sys

import pytest

from fastnn import tune as tune_module
from fastnn.cli import main
from fastnn.commands import tune as tune_command


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
])
def test_bad_options_are_messages(argv, message, tmp_path, monkeypatch, no_search):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=f"fastnn tune: {message}"):
        main(["tune", "--workers", "1", *argv])
    assert os.listdir(tmp_path) == [] and no_search == []


class _Result:
    """A finished search whose save writes results.json and then meets `stop` (None: writes the rest)."""

    best = None

    def __init__(self, stop=None):
        self.stop = stop

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
    monkeypatch.setattr(tune_module, "coarse_to_fine", lambda **kwargs: _Result())
    assert main(["tune", "--workers", "1", "--quiet", "--out", str(out), "--overwrite"]) == 1  # no trial succeeded
    assert sorted(os.listdir(out)) == [".fastnn-tune", "results.csv", "results.json", "scatter.png"]
    assert all((out / name).read_text() == "the new search" for name in os.listdir(out) if name != ".fastnn-tune")
    assert f"wrote {out / 'results.json'}" in capsys.readouterr().out


def test_a_search_that_fails_leaves_a_directory_the_user_made(tmp_path, no_search):
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(SearchStarted):
        main(["tune", "--workers", "1", "--quiet", "--out", str(mine)])
    assert mine.is_dir() and os.listdir(mine) == []


def test_a_search_holds_its_out_so_an_overwrite_meanwhile_is_refused(tmp_path, monkeypatch):
    """Nothing told a search still running from a finished one: `fastnn tune --overwrite` of its --out meanwhile
    was accepted, and the two searches' results replaced each other."""
    from fastnn.commands import _outputs

    out = tmp_path / "out"
    seen = []

    def search(**kwargs):
        with pytest.raises(SystemExit, match="a run is still writing to"):
            _outputs.hold(str(out), "tune")  # what another process's --overwrite meets
        seen.append(True)
        raise SearchStarted

    monkeypatch.setattr(tune_module, "random_search", search)
    with pytest.raises(SearchStarted):
        main(["tune", "--out", str(out), "--workers", "1", "--fine-trials", "0", "--quiet"])
    assert seen == [True]
    assert not out.exists()  # a search that stopped releases its claim
