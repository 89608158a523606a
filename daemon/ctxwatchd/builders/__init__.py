"""Learning from real builds: comparing predictions with BuildKit, and builds buildx recorded."""
