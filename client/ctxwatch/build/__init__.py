"""`ctxwatch build`: run a real BuildKit build, predict it first, then compare."""
