"""Method handlers of grpc's asyncio server, wrapped: each call inside an
async context manager (a check before, a count around) whatever the method's
kind and style; requests that do not parse refused as such; and the
wrapping done once per method, as services add their handlers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import grpc
from google.protobuf.message import DecodeError

Around = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager]
KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def around_each_call(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    """The same handler, each call inside `around(context)`. A streaming method
    is an async generator (ours) or a coroutine that writes (grpc's health
    Watch): the wrapper keeps its style, which is how the server tells them apart."""
    for kind in KINDS:
        behaviour = getattr(handler, kind)
        if behaviour is None:
            continue
        if inspect.isasyncgenfunction(behaviour):

            async def streamed(request, context, behaviour=behaviour):
                async with around(context):
                    async for response in behaviour(request, context):
                        yield response

            return handler._replace(**{kind: streamed})

        async def answered(request, context, behaviour=behaviour):
            async with around(context):
                return await behaviour(request, context)

        return handler._replace(**{kind: answered})
    return handler


class _Malformed:
    """A request whose bytes do not parse (what the lenient parser hands the call)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def lenient(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same handler, except that a request that does not parse is INVALID_ARGUMENT
    saying so (grpc's asyncio server would answer UNKNOWN with the parser's exception)."""
    parse = handler.request_deserializer
    if parse is None or (handler.unary_unary is None and handler.unary_stream is None):
        return handler  # no parser of ours, or a request stream (reflection): left as it is

    def parse_leniently(data: bytes) -> object:
        try:
            return parse(data)
        except DecodeError as e:
            return _Malformed(e)

    kind = "unary_unary" if handler.unary_unary is not None else "unary_stream"
    behaviour = getattr(handler, kind)

    async def refuse(request, context):
        why = f"the request to {method} does not parse: {request.error}"
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, why)

    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request, context):
            if isinstance(request, _Malformed):
                await refuse(request, context)
            async for response in behaviour(request, context):
                yield response

        return handler._replace(request_deserializer=parse_leniently, **{kind: streamed})

    async def answered(request, context):
        if isinstance(request, _Malformed):
            await refuse(request, context)
        return await behaviour(request, context)

    return handler._replace(request_deserializer=parse_leniently, **{kind: answered})


Wrap = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]  # (method path, handler) -> handler


class WrappingServer:
    """Stands for the server while services add their handlers to it: each
    method handler is added wrapped (by `wraps`, the first one innermost).
    Wrapped once, as it is added: an interceptor would wrap the handler again
    on every call, each call paying a chain of coroutines and closures."""

    def __init__(self, server: grpc.aio.Server, wraps: Sequence[Wrap]) -> None:
        self._server = server
        self._wraps = tuple(wraps)

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h, self._wrapped) for h in generic_handlers))

    def add_registered_method_handlers(self, service: str, method_handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: self._wrapped(f"/{service}/{name}", handler) for name, handler in method_handlers.items()}
        self._server.add_registered_method_handlers(service, wrapped)

    def _wrapped(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        for wrap in self._wraps:
            handler = wrap(method, handler)
        return handler


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler (asked for each call's method) whose handlers come wrapped, each wrapped once."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrapped: Wrap) -> None:
        self._inner = inner
        self._wrap = wrapped
        self._done: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # method -> (as is, wrapped)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        done = self._done.get(method)
        if done is None or done[0] is not handler:
            done = self._done[method] = (handler, self._wrap(method, handler))
        return done[1]
