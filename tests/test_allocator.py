"""fastnn.allocator.keep_freed_memory: glibc keeps freed arrays' memory, so re-allocating them does not fault."""

import subprocess
import sys
import textwrap

import pytest

from fastnn import allocator

glibc_only = pytest.mark.skipif(allocator._glibc_mallopt() is None, reason="the C library is not glibc")

FAULTS = textwrap.dedent("""
    import sys, resource, numpy as np
    if sys.argv[1] == "keep":
        from fastnn.allocator import keep_freed_memory
        assert keep_freed_memory()
    if sys.argv[1] == "import":  # the library itself, imported and used, leaves malloc as it was
        import fastnn, fastnn.allocator, fastnn.solver, fastnn.classifiers.cnn, fastnn.layers as L
        L.relu_forward(np.ones(4))
    def cycle():  # a train step's pattern: arrays of a few MB, written, then freed
        a = np.empty(3 * 2**20); a.fill(1.0)
        b = np.empty(2**20); b.fill(2.0)
        del a, b
    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        cycle()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@glibc_only
def test_freed_memory_is_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    assert default > 100  # glibc's default gives these arrays back and faults them in again
    assert kept < default / 10


def test_it_is_a_no_op_where_the_c_library_is_not_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: None)
    assert allocator.keep_freed_memory() is False


@glibc_only
def test_the_library_does_not_apply_it_on_import():
    assert _faults("import") > 100
