"""Featurescope compute layer: torch and numpy only, callable from a notebook.

Nothing heavy happens at import: no CUDA initialisation, no model loading, no training.
Submodules are imported explicitly (``from compute import attribution``).
"""
