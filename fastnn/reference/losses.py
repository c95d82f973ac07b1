"""Placeholder: filled in by the reference work (issue 2)."""

__all__ = []
