"""Parley's benchmarks (`make bench`): each figure next to a reference measured in the
same run. See bench/README.md for the method and the latest figures."""
