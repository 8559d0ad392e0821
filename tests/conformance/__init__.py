"""Conformance suite: black-box scenarios pinning SEMANTICS.md over gRPC (echo profile only)."""
