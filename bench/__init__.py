"""Benchmarks: scripts that print numbers (`make bench`), not timed tests. See bench/run.py."""
