"""Featurescope's Dash app: layout and callbacks only; the numerics live in compute/, the figures in components/."""
