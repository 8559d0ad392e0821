"""`python -m load`: a bounded load test of one `parley-server` process on loopback.

See load/README.md for what it measures and the figures of the last run.
"""
