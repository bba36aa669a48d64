"""Benchmarks: reproducible, environment printed, medians and ratios."""
