"""Interceptors' common part: a method handler of grpc's asyncio server whose
calls each run inside an async context manager (a check before, a count
around), whatever the method's kind and style."""

from __future__ import annotations

import inspect
from collections.abc import Callable
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


class MalformedRequests(grpc.aio.ServerInterceptor):
    """A request that does not parse is INVALID_ARGUMENT saying so (grpc's asyncio
    server would answer UNKNOWN with the parser's exception)."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        parse = handler.request_deserializer if handler is not None else None
        if parse is None or (handler.unary_unary is None and handler.unary_stream is None):
            return handler  # no parser of ours, or a request stream (reflection): left as it is

        def lenient(data: bytes) -> object:
            try:
                return parse(data)
            except DecodeError as e:
                return _Malformed(e)

        method = handler_call_details.method
        kind = "unary_unary" if handler.unary_unary is not None else "unary_stream"
        behaviour = getattr(handler, kind)

        async def refuse(request, context):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request to {method} does not parse: {request.error}"
            )

        if inspect.isasyncgenfunction(behaviour):

            async def streamed(request, context):
                if isinstance(request, _Malformed):
                    await refuse(request, context)
                async for response in behaviour(request, context):
                    yield response

            return handler._replace(request_deserializer=lenient, **{kind: streamed})

        async def answered(request, context):
            if isinstance(request, _Malformed):
                await refuse(request, context)
            return await behaviour(request, context)

        return handler._replace(request_deserializer=lenient, **{kind: answered})
