"""The Parley server: dialogue engine, agents, stores and the gRPC api."""
