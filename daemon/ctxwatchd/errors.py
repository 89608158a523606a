"""Errors a client caused. The server answers each with its gRPC status
(server/service.py); the core knows nothing of the wire."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ApiError):
    pass


class NotFound(ApiError):
    pass


class AlreadyExists(ApiError):
    pass


class FailedPrecondition(ApiError):
    pass
