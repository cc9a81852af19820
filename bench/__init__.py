"""Benchmarks: ``python -m bench [name ...]`` (``make bench``). Each prints its figures and the
baseline it is compared against, measured in the same run on the same servers."""
