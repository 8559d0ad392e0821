"""Generated protobuf and gRPC stubs for the parley.v1 contract (make protos)."""
