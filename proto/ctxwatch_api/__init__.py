"""What the daemon and its clients share: the generated gRPC stubs and where the daemon lives."""
