"""Benchmarks: `make bench` (python -m tests.bench). Not part of the default test run."""
