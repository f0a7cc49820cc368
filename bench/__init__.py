"""Benchmarks (not tests): `python -m bench.<name>`; results go in BENCHMARKS.md."""
