"""Cold start, each in a fresh process: `import fastnn`, and a first conv forward + backward with an empty numba
cache and with a warm one (FASTNN_CACHE=1)."""

import os
import subprocess
import sys
import time

FIRST_CONV = (
    "import numpy as np, fastnn\n"
    "from fastnn.layer_utils import conv_forward_fast, conv_backward_fast\n"
    "x = np.ones((2, 3, 8, 8)); w = np.ones((4, 3, 3, 3)); b = np.zeros(4)\n"
    "with fastnn.options(backend='jit'):\n"
    "    out, cache = conv_forward_fast(x, w, b, {'stride': 1, 'pad': 1}); conv_backward_fast(out, cache)\n"
)


def _run(code, env=None):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


class ColdStart:
    timeout = 300
    number = 1
    repeat = 1

    def setup_cache(self):
        # asv runs setup_cache in a temporary directory of its own and removes it after the last benchmark that
        # uses it: a cache made under it goes with it (one under /tmp was left behind by every run)
        cache_dir = os.path.abspath("numba-cache")
        os.makedirs(cache_dir, exist_ok=True)
        _run(FIRST_CONV, {"FASTNN_CACHE": "1", "NUMBA_CACHE_DIR": cache_dir})  # fill it once
        return cache_dir

    def track_import_fastnn_seconds(self, cache_dir):
        return _run("import fastnn")

    def track_import_numpy_numba_seconds(self, cache_dir):
        return _run("import numpy, numba")

    def track_first_conv_cold_seconds(self, cache_dir):
        return _run(FIRST_CONV, {"FASTNN_CACHE": "0"})

    def track_first_conv_warm_cache_seconds(self, cache_dir):
        return _run(FIRST_CONV, {"FASTNN_CACHE": "1", "NUMBA_CACHE_DIR": cache_dir})

    track_import_fastnn_seconds.unit = "seconds"
    track_import_numpy_numba_seconds.unit = "seconds"
    track_first_conv_cold_seconds.unit = "seconds"
    track_first_conv_warm_cache_seconds.unit = "seconds"
