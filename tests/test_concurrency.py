"""Kernels from many threads at once, from fork and spawn workers (after the parent ran parallel kernels), and
beside a user's own numba prange function: no abort, results equal to the serial run. Each scenario runs in a
subprocess so that an abort fails the test instead of killing pytest."""

import os
import subprocess
import sys
import textwrap

import pytest

COMMON = textwrap.dedent("""
    import numpy as np
    import fastnn
    import fastnn.layer_utils as L

    def step(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((4, 3, 8, 8)); w = rng.standard_normal((5, 3, 3, 3)); b = rng.standard_normal(5)
        out, cache = L.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1},
                                              {"pool_height": 2, "pool_width": 2, "stride": 2})
        grads = L.conv_relu_pool_backward(np.ones_like(out), cache)
        flat = out.reshape(4, -1)
        h, c = L.affine_bn_relu_forward(flat, rng.standard_normal((80, 6)), np.zeros(6), np.ones(6),
                                        np.zeros(6), {"mode": "train"})
        grads += L.affine_bn_relu_backward(np.ones_like(h), c)
        h2, c2 = L.affine_ln_relu_forward(flat, rng.standard_normal((80, 6)), np.zeros(6), np.ones(6),
                                          np.zeros(6), {})
        d, dc = L.dropout_forward(h2, {"mode": "train", "p": 0.5, "seed": seed})
        grads += (L.dropout_backward(d, dc),)
        s, sc = L.spatial_groupnorm_forward(x, np.ones(3), np.zeros(3), 3, {})
        grads += L.spatial_groupnorm_backward(s, sc)
        loss, dscores = L.softmax_loss(h, np.arange(4) % 6)
        return float(sum(float(np.sum(g)) for g in grads) + loss + out.sum() + h.sum())

    fastnn.options(backend="jit")
""")

SCENARIOS = {
    "threads": """
        from concurrent.futures import ThreadPoolExecutor
        serial = [step(s) for s in range(16)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(step, range(16))) == serial
    """,
    "fork": """
        import multiprocessing as mp
        serial = [step(s) for s in range(4)]  # the parent has run parallel kernels before forking
        with mp.get_context("fork").Pool(2) as pool:
            assert pool.map(step, range(4)) == serial
    """,
    "spawn": """
        import multiprocessing as mp
        if __name__ == "__main__":
            serial = [step(s) for s in range(4)]
            with mp.get_context("spawn").Pool(2) as pool:
                assert pool.map(step, range(4)) == serial
    """,
    "user_prange": """
        import numba
        from concurrent.futures import ThreadPoolExecutor

        @numba.njit(parallel=True)
        def user_kernel(a):
            total = 0.0
            for i in numba.prange(a.size):
                total += np.sqrt(abs(a[i]))
            return total

        a = np.random.default_rng(0).standard_normal(100000)
        expected_user, serial = user_kernel(a), step(0)
        with ThreadPoolExecutor(max_workers=4) as pool:  # the user's parallel kernel beside fastnn's
            futures = [pool.submit(step, 0), pool.submit(user_kernel, a), pool.submit(step, 0)]
            results = [f.result() for f in futures]
        assert results[0] == serial and results[2] == serial
        assert abs(results[1] - expected_user) < 1e-9 * abs(expected_user)
        assert user_kernel(a) == expected_user and step(0) == serial
    """,
}


@pytest.fixture(scope="module")
def shared_numba_cache(tmp_path_factory):
    """One on-disk kernel cache for every scenario's processes: each compiles once, not once per process."""
    return {**os.environ, "FASTNN_CACHE": "1", "NUMBA_CACHE_DIR": str(tmp_path_factory.mktemp("numba-cache"))}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kernels_run_concurrently_without_aborting(tmp_path, scenario, shared_numba_cache):
    script = tmp_path / f"{scenario}.py"
    body = textwrap.dedent(SCENARIOS[scenario])
    if scenario == "spawn":  # spawn workers import the script as a module: keep step() at module level
        script.write_text(COMMON + body + '\nprint("ok")\n')
    else:
        script.write_text(COMMON + body + 'print("ok")\n')
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=shared_numba_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
