"""Benchmarks: figures users care about, each beside a baseline measured in the same run."""
