"""Placeholder: filled in by the kernels work (issue 3)."""

__all__ = []
