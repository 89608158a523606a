"""What the daemon accepts from a context or a client, in one place.

Every limit answers with an error naming it (the context's report, or
INVALID_ARGUMENT) while the daemon serves everyone else. README.md ("Limits")
lists them; a change here is a change there.
"""

from __future__ import annotations

from ctxwatch_api.wire import MAX_REPLY_BYTES

KiB = 1024
MiB = 1024 * KiB

MAX_DOCKERFILE_BYTES = 2 * MiB
MAX_INSTRUCTIONS = 10_000  # Dockerfile instructions (each line's FROM, RUN, COPY...)
MAX_EXPANSION_CHARS = 1 * MiB  # one word after ARG/ENV expansion
MAX_PLAN_EXPANSION_CHARS = 16 * MiB  # every expansion of one Dockerfile together
# Every RUN keeps and hashes its environment (each ARG and ENV in scope: name, value, and about
# RUN_ENV_VARIABLE_BYTES of memory each): what that costs over all the RUNs of one Dockerfile.
MAX_RUN_ENVIRONMENT_BYTES = 64 * MiB
RUN_ENV_VARIABLE_BYTES = 128

MAX_IGNORE_FILE_BYTES = 1 * MiB  # a .dockerignore (each line at most 64 KiB, as Docker reads it)
MAX_IGNORE_PATTERNS = 10_000
MAX_EXCLUDE_SETS = 64  # different COPY --exclude sets in one Dockerfile (each keeps its own folder digests)

MAX_BUILD_ARGS = 1000  # per context or request
MAX_BUILD_ARG_BYTES = 32 * KiB  # names and values together, per context or request
MAX_CONTEXTS = 1000  # registered at once
MAX_CONTEXTS_PER_REQUEST = 1000  # each named once
# One reply at most ctxwatch_api.wire.MAX_REPLY_BYTES: past it, reports are sent without their steps.
REPLY_BUDGET_BYTES = MAX_REPLY_BYTES - 1 * MiB
