"""Benchmarks of Featurescope: ``python -m bench.run [--quick] [--out bench/results/latest.md]``."""
