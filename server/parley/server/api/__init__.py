"""The gRPC surface: servicers, proto <-> engine mapping, validation and error mapping."""
