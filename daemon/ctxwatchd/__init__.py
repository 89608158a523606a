"""ctxwatchd: the daemon that predicts BuildKit cache hits for watched build contexts."""

__version__ = "0.1.0"
