"""fastnn._files: a user's file is replaced atomically, but a device, FIFO or socket is written in place."""

import os
import stat
import subprocess
import sys
import threading

import pytest

from fastnn._files import atomic_open, check_writable_path, writes_in_place


def _read_fifo(path, into):
    with open(path, "rb") as f:
        into.append(f.read())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("through_symlink", [False, True])
def test_a_fifo_is_written_in_place_not_replaced_by_a_regular_file(tmp_path, through_symlink):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = fifo
    if through_symlink:
        target = tmp_path / "link"
        target.symlink_to(fifo)
    check_writable_path("t", "path", target, probe=True)
    received = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, received))
    reader.start()
    with atomic_open(target, "w", fn="t") as f:
        f.write("report")
    reader.join(timeout=30)
    assert received == [b"report"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pipe"] + (["link"] if through_symlink else []))


def test_dev_null_and_stdout_are_written_in_place():
    assert writes_in_place("/dev/null") and writes_in_place("/dev/stdout") and writes_in_place("/proc/self/fd/1")
    with atomic_open("/dev/null", "wb", fn="t") as f:
        f.write(b"nothing")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_regular_files_and_new_paths_are_still_replaced_atomically(tmp_path):
    target = tmp_path / "a.txt"
    assert not writes_in_place(target)
    target.write_text("old")
    inode = os.stat(target).st_ino
    with atomic_open(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new" and os.stat(target).st_ino != inode  # a new file renamed over the old


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK), reason="needs /dev/shm")
def test_a_regular_file_under_dev_shm_is_replaced_not_appended_to():
    """The first version wrote in place anything under /dev/, so a JSON file on /dev/shm got a second document
    appended to it."""
    path = os.path.join("/dev/shm", f"fastnn-test-{os.getpid()}.json")
    try:
        for text in ('{"a": 1}', '{"b": 2}'):
            check_writable_path("t", "path", path, probe=True)
            with atomic_open(path, "w") as f:
                f.write(text)
        with open(path) as f:
            assert f.read() == '{"b": 2}'
    finally:
        if os.path.exists(path):
            os.remove(path)


def test_dev_stdout_redirected_to_a_file_keeps_what_was_printed_before(tmp_path):
    code = ("from fastnn._files import atomic_open\n"
            "print('the report')\n"
            "with atomic_open('/dev/stdout', 'w') as f:\n"
            "    f.write('the json')\n")
    target = tmp_path / "redirected.txt"
    with open(target, "w") as stdout:
        subprocess.run([sys.executable, "-c", code], stdout=stdout, check=True, timeout=120)
    assert target.read_text() == "the report\nthe json"


@pytest.mark.parametrize("path", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_what_is_printed_after_a_file_written_to_dev_stdout_comes_after_it(tmp_path, path):
    """`fastnn bench --json /dev/stdout > r.txt`: the JSON went through a new open of /dev/stdout, at the end of
    the file, and the line printed next went at stdout's own offset, over the JSON's first bytes."""
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    code = ("import sys\n"
            "from fastnn._files import atomic_open\n"
            "print('the report')\n"
            "with atomic_open(sys.argv[1], 'w') as f:\n"
            "    f.write('the json')\n"
            "print('written')\n")
    target = tmp_path / "redirected.txt"
    with open(target, "w") as stdout:
        subprocess.run([sys.executable, "-c", code, path], stdout=stdout, check=True, timeout=120)
    assert target.read_text() == "the report\nthe jsonwritten\n"


def test_a_symlink_to_dev_stdout_is_written_in_place_too(tmp_path):
    """A link to /dev/stdout took the rename path (its target is the redirected regular file): the JSON replaced
    the report printed before it."""
    link = tmp_path / "report.json"
    link.symlink_to("/dev/stdout")
    (tmp_path / "second.json").symlink_to(link.name)  # two hops
    code = ("import sys\n"
            "from fastnn._files import atomic_open\n"
            "print('the report')\n"
            "for path in sys.argv[1:]:\n"
            "    with atomic_open(path, 'w') as f:\n"
            "        f.write(' json')\n")
    target = tmp_path / "redirected.txt"
    with open(target, "w") as stdout:
        subprocess.run([sys.executable, "-c", code, str(link), str(tmp_path / "second.json")], stdout=stdout,
                       check=True, timeout=120)
    assert target.read_text() == "the report\n json json"
    assert os.readlink(link) == "/dev/stdout"


@pytest.mark.parametrize("name", ["a" * 250 + ".json", "é" * 125 + ".json"])
def test_a_file_name_at_the_systems_limit_is_written(tmp_path, name):
    """The temporary name beside it is the name plus 14 characters: names of 242-255 bytes were refused."""
    assert len(os.fsencode(name)) <= 255
    with atomic_open(tmp_path / name, "w") as f:
        f.write("whole")
    assert (tmp_path / name).read_text() == "whole" and os.listdir(tmp_path) == [name]
