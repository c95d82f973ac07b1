"""Numba kernels: loops over arrays and scalars, nothing else (no dicts, no validation, no RNG state).

Each module mirrors the fastnn.reference module of the same name; each kernel's docstring names the reference
function it mirrors. All numba options live in _jit.py. fastnn.compiled wraps these into the layer API.
"""
