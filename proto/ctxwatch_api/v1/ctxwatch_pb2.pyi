from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_CACHED: _ClassVar[StepStatus]
    STEP_STATUS_INVALIDATED: _ClassVar[StepStatus]
    STEP_STATUS_UNKNOWN: _ClassVar[StepStatus]
    STEP_STATUS_ERROR: _ClassVar[StepStatus]

class Cause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAUSE_UNSPECIFIED: _ClassVar[Cause]
    CAUSE_NEVER_BUILT: _ClassVar[Cause]
    CAUSE_INPUTS_CHANGED: _ClassVar[Cause]
    CAUSE_INSTRUCTION_CHANGED: _ClassVar[Cause]
    CAUSE_BUILD_ARG_CHANGED: _ClassVar[Cause]
    CAUSE_UPSTREAM: _ClassVar[Cause]
    CAUSE_NO_CACHE: _ClassVar[Cause]
    CAUSE_REMOTE: _ClassVar[Cause]
    CAUSE_UPSTREAM_OUTPUT: _ClassVar[Cause]
    CAUSE_ERROR: _ClassVar[Cause]
    CAUSE_NOT_IN_LAST_BUILD: _ClassVar[Cause]
    CAUSE_RUNS_ANYWAY: _ClassVar[Cause]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_ADDED: _ClassVar[ChangeKind]
    CHANGE_KIND_REMOVED: _ClassVar[ChangeKind]
    CHANGE_KIND_CONTENT: _ClassVar[ChangeKind]
    CHANGE_KIND_MODE: _ClassVar[ChangeKind]
    CHANGE_KIND_SYMLINK_TARGET: _ClassVar[ChangeKind]
    CHANGE_KIND_TYPE: _ClassVar[ChangeKind]
    CHANGE_KIND_XATTR: _ClassVar[ChangeKind]
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_CACHED: StepStatus
STEP_STATUS_INVALIDATED: StepStatus
STEP_STATUS_UNKNOWN: StepStatus
STEP_STATUS_ERROR: StepStatus
CAUSE_UNSPECIFIED: Cause
CAUSE_NEVER_BUILT: Cause
CAUSE_INPUTS_CHANGED: Cause
CAUSE_INSTRUCTION_CHANGED: Cause
CAUSE_BUILD_ARG_CHANGED: Cause
CAUSE_UPSTREAM: Cause
CAUSE_NO_CACHE: Cause
CAUSE_REMOTE: Cause
CAUSE_UPSTREAM_OUTPUT: Cause
CAUSE_ERROR: Cause
CAUSE_NOT_IN_LAST_BUILD: Cause
CAUSE_RUNS_ANYWAY: Cause
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_ADDED: ChangeKind
CHANGE_KIND_REMOVED: ChangeKind
CHANGE_KIND_CONTENT: ChangeKind
CHANGE_KIND_MODE: ChangeKind
CHANGE_KIND_SYMLINK_TARGET: ChangeKind
CHANGE_KIND_TYPE: ChangeKind
CHANGE_KIND_XATTR: ChangeKind

class Context(_message.Message):
    __slots__ = ("name", "path", "dockerfile", "build_args", "target", "build_contexts", "no_cache", "no_cache_filter", "labels", "watch_root", "strict_remote")
    class BuildArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class BuildContextsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BUILD_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FILTER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WATCH_ROOT_FIELD_NUMBER: _ClassVar[int]
    STRICT_REMOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    dockerfile: str
    build_args: _containers.ScalarMap[str, str]
    target: str
    build_contexts: _containers.ScalarMap[str, str]
    no_cache: bool
    no_cache_filter: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    watch_root: str
    strict_remote: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., dockerfile: _Optional[str] = ..., build_args: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., build_contexts: _Optional[_Mapping[str, str]] = ..., no_cache: _Optional[bool] = ..., no_cache_filter: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., watch_root: _Optional[str] = ..., strict_remote: _Optional[bool] = ...) -> None: ...

class RegisterContextRequest(_message.Message):
    __slots__ = ("path", "dockerfile", "build_args", "target", "name", "build_contexts", "no_cache", "no_cache_filter", "labels", "watch_root", "strict_remote")
    class BuildArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class BuildContextsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUILD_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FILTER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WATCH_ROOT_FIELD_NUMBER: _ClassVar[int]
    STRICT_REMOTE_FIELD_NUMBER: _ClassVar[int]
    path: str
    dockerfile: str
    build_args: _containers.ScalarMap[str, str]
    target: str
    name: str
    build_contexts: _containers.ScalarMap[str, str]
    no_cache: bool
    no_cache_filter: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    watch_root: str
    strict_remote: bool
    def __init__(self, path: _Optional[str] = ..., dockerfile: _Optional[str] = ..., build_args: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., name: _Optional[str] = ..., build_contexts: _Optional[_Mapping[str, str]] = ..., no_cache: _Optional[bool] = ..., no_cache_filter: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., watch_root: _Optional[str] = ..., strict_remote: _Optional[bool] = ...) -> None: ...

class RegisterContextResponse(_message.Message):
    __slots__ = ("context", "updated")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    context: Context
    updated: bool
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., updated: _Optional[bool] = ...) -> None: ...

class ContextRef(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class UnregisterContextRequest(_message.Message):
    __slots__ = ("context", "forget")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    FORGET_FIELD_NUMBER: _ClassVar[int]
    context: ContextRef
    forget: bool
    def __init__(self, context: _Optional[_Union[ContextRef, _Mapping]] = ..., forget: _Optional[bool] = ...) -> None: ...

class UnregisterContextResponse(_message.Message):
    __slots__ = ("context", "builds_kept")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BUILDS_KEPT_FIELD_NUMBER: _ClassVar[int]
    context: Context
    builds_kept: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., builds_kept: _Optional[int] = ...) -> None: ...

class ListContextsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListContextsResponse(_message.Message):
    __slots__ = ("contexts",)
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    contexts: _containers.RepeatedCompositeFieldContainer[Context]
    def __init__(self, contexts: _Optional[_Iterable[_Union[Context, _Mapping]]] = ...) -> None: ...

class BuildOptions(_message.Message):
    __slots__ = ("build_args", "target", "no_cache", "no_cache_filter", "assume_remote_unchanged", "dockerfile_content", "build_contexts", "strict_remote")
    class BuildArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class BuildContextsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FILTER_FIELD_NUMBER: _ClassVar[int]
    ASSUME_REMOTE_UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    BUILD_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    STRICT_REMOTE_FIELD_NUMBER: _ClassVar[int]
    build_args: _containers.ScalarMap[str, str]
    target: str
    no_cache: bool
    no_cache_filter: _containers.RepeatedScalarFieldContainer[str]
    assume_remote_unchanged: bool
    dockerfile_content: str
    build_contexts: _containers.ScalarMap[str, str]
    strict_remote: bool
    def __init__(self, build_args: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., no_cache: _Optional[bool] = ..., no_cache_filter: _Optional[_Iterable[str]] = ..., assume_remote_unchanged: _Optional[bool] = ..., dockerfile_content: _Optional[str] = ..., build_contexts: _Optional[_Mapping[str, str]] = ..., strict_remote: _Optional[bool] = ...) -> None: ...

class GetReportsRequest(_message.Message):
    __slots__ = ("contexts", "options")
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    contexts: _containers.RepeatedCompositeFieldContainer[ContextRef]
    options: BuildOptions
    def __init__(self, contexts: _Optional[_Iterable[_Union[ContextRef, _Mapping]]] = ..., options: _Optional[_Union[BuildOptions, _Mapping]] = ...) -> None: ...

class GetReportsResponse(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[Report]
    def __init__(self, reports: _Optional[_Iterable[_Union[Report, _Mapping]]] = ...) -> None: ...

class MarkBuiltRequest(_message.Message):
    __slots__ = ("context", "options", "run")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    context: ContextRef
    options: BuildOptions
    run: BuildRun
    def __init__(self, context: _Optional[_Union[ContextRef, _Mapping]] = ..., options: _Optional[_Union[BuildOptions, _Mapping]] = ..., run: _Optional[_Union[BuildRun, _Mapping]] = ...) -> None: ...

class BuildRun(_message.Message):
    __slots__ = ("steps", "failed", "prediction", "command", "source", "builder_ref")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BUILDER_REF_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[ObservedStep]
    failed: bool
    prediction: Report
    command: str
    source: str
    builder_ref: str
    def __init__(self, steps: _Optional[_Iterable[_Union[ObservedStep, _Mapping]]] = ..., failed: _Optional[bool] = ..., prediction: _Optional[_Union[Report, _Mapping]] = ..., command: _Optional[str] = ..., source: _Optional[str] = ..., builder_ref: _Optional[str] = ...) -> None: ...

class ObservedStep(_message.Message):
    __slots__ = ("line", "cached", "completed", "error")
    LINE_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    line: int
    cached: bool
    completed: bool
    error: str
    def __init__(self, line: _Optional[int] = ..., cached: _Optional[bool] = ..., completed: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class MarkBuiltResponse(_message.Message):
    __slots__ = ("report", "build_id", "steps_recorded", "failed", "check")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    report: Report
    build_id: int
    steps_recorded: int
    failed: str
    check: PredictionCheck
    def __init__(self, report: _Optional[_Union[Report, _Mapping]] = ..., build_id: _Optional[int] = ..., steps_recorded: _Optional[int] = ..., failed: _Optional[str] = ..., check: _Optional[_Union[PredictionCheck, _Mapping]] = ...) -> None: ...

class PredictionCheck(_message.Message):
    __slots__ = ("context", "dockerfile", "command", "unix_ms", "steps", "agreed", "unknown", "disagreements")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    AGREED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    context: str
    dockerfile: str
    command: str
    unix_ms: int
    steps: int
    agreed: int
    unknown: int
    disagreements: _containers.RepeatedCompositeFieldContainer[Disagreement]
    def __init__(self, context: _Optional[str] = ..., dockerfile: _Optional[str] = ..., command: _Optional[str] = ..., unix_ms: _Optional[int] = ..., steps: _Optional[int] = ..., agreed: _Optional[int] = ..., unknown: _Optional[int] = ..., disagreements: _Optional[_Iterable[_Union[Disagreement, _Mapping]]] = ...) -> None: ...

class Disagreement(_message.Message):
    __slots__ = ("line", "instruction", "predicted", "cause", "explanation", "cached", "error")
    LINE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    line: int
    instruction: str
    predicted: StepStatus
    cause: Cause
    explanation: str
    cached: bool
    error: str
    def __init__(self, line: _Optional[int] = ..., instruction: _Optional[str] = ..., predicted: _Optional[_Union[StepStatus, str]] = ..., cause: _Optional[_Union[Cause, str]] = ..., explanation: _Optional[str] = ..., cached: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class PruneBuildsRequest(_message.Message):
    __slots__ = ("contexts", "keep", "older_than_seconds", "dry_run")
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    contexts: _containers.RepeatedCompositeFieldContainer[ContextRef]
    keep: int
    older_than_seconds: float
    dry_run: bool
    def __init__(self, contexts: _Optional[_Iterable[_Union[ContextRef, _Mapping]]] = ..., keep: _Optional[int] = ..., older_than_seconds: _Optional[float] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class PruneBuildsResponse(_message.Message):
    __slots__ = ("builds_removed", "nodes_removed")
    BUILDS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    NODES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    builds_removed: int
    nodes_removed: int
    def __init__(self, builds_removed: _Optional[int] = ..., nodes_removed: _Optional[int] = ...) -> None: ...

class WatchInvalidationsRequest(_message.Message):
    __slots__ = ("context", "options")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    context: ContextRef
    options: BuildOptions
    def __init__(self, context: _Optional[_Union[ContextRef, _Mapping]] = ..., options: _Optional[_Union[BuildOptions, _Mapping]] = ...) -> None: ...

class FindReadersRequest(_message.Message):
    __slots__ = ("path", "contexts")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    path: str
    contexts: _containers.RepeatedCompositeFieldContainer[ContextRef]
    def __init__(self, path: _Optional[str] = ..., contexts: _Optional[_Iterable[_Union[ContextRef, _Mapping]]] = ...) -> None: ...

class FindReadersResponse(_message.Message):
    __slots__ = ("readers", "unknown")
    READERS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    readers: _containers.RepeatedCompositeFieldContainer[Reader]
    unknown: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, readers: _Optional[_Iterable[_Union[Reader, _Mapping]]] = ..., unknown: _Optional[_Iterable[str]] = ...) -> None: ...

class Reader(_message.Message):
    __slots__ = ("context", "step", "source", "steps_after")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STEPS_AFTER_FIELD_NUMBER: _ClassVar[int]
    context: Context
    step: Step
    source: str
    steps_after: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., step: _Optional[_Union[Step, _Mapping]] = ..., source: _Optional[str] = ..., steps_after: _Optional[int] = ...) -> None: ...

class PathChange(_message.Message):
    __slots__ = ("path", "kind", "detail")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: ChangeKind
    detail: str
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ValueChange(_message.Message):
    __slots__ = ("name", "old_value", "new_value", "old_set", "new_set")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    OLD_SET_FIELD_NUMBER: _ClassVar[int]
    NEW_SET_FIELD_NUMBER: _ClassVar[int]
    name: str
    old_value: str
    new_value: str
    old_set: bool
    new_set: bool
    def __init__(self, name: _Optional[str] = ..., old_value: _Optional[str] = ..., new_value: _Optional[str] = ..., old_set: _Optional[bool] = ..., new_set: _Optional[bool] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("start_line", "start_column", "end_line", "end_column")
    START_LINE_FIELD_NUMBER: _ClassVar[int]
    START_COLUMN_FIELD_NUMBER: _ClassVar[int]
    END_LINE_FIELD_NUMBER: _ClassVar[int]
    END_COLUMN_FIELD_NUMBER: _ClassVar[int]
    start_line: int
    start_column: int
    end_line: int
    end_column: int
    def __init__(self, start_line: _Optional[int] = ..., start_column: _Optional[int] = ..., end_line: _Optional[int] = ..., end_column: _Optional[int] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("stage", "stage_index", "index", "instruction", "line", "status", "cause", "explanation", "changed_paths", "changed_paths_total", "old_instruction", "changed_values", "upstream_step", "warnings", "error", "key", "changed_paths_truncated", "range", "progress", "expanded_instruction", "old_expanded_instruction")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_PATHS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_PATHS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    OLD_INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_VALUES_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_STEP_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CHANGED_PATHS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EXPANDED_INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    OLD_EXPANDED_INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    stage: str
    stage_index: int
    index: int
    instruction: str
    line: int
    status: StepStatus
    cause: Cause
    explanation: str
    changed_paths: _containers.RepeatedCompositeFieldContainer[PathChange]
    changed_paths_total: int
    old_instruction: str
    changed_values: _containers.RepeatedCompositeFieldContainer[ValueChange]
    upstream_step: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    error: str
    key: str
    changed_paths_truncated: bool
    range: Range
    progress: str
    expanded_instruction: str
    old_expanded_instruction: str
    def __init__(self, stage: _Optional[str] = ..., stage_index: _Optional[int] = ..., index: _Optional[int] = ..., instruction: _Optional[str] = ..., line: _Optional[int] = ..., status: _Optional[_Union[StepStatus, str]] = ..., cause: _Optional[_Union[Cause, str]] = ..., explanation: _Optional[str] = ..., changed_paths: _Optional[_Iterable[_Union[PathChange, _Mapping]]] = ..., changed_paths_total: _Optional[int] = ..., old_instruction: _Optional[str] = ..., changed_values: _Optional[_Iterable[_Union[ValueChange, _Mapping]]] = ..., upstream_step: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., key: _Optional[str] = ..., changed_paths_truncated: _Optional[bool] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., progress: _Optional[str] = ..., expanded_instruction: _Optional[str] = ..., old_expanded_instruction: _Optional[str] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("context", "steps", "error", "error_line", "all_cached", "builds_recorded", "last_build_unix_ms", "notes", "context_digest", "error_range", "assumed_remote", "unread_build_unix_ms")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_LINE_FIELD_NUMBER: _ClassVar[int]
    ALL_CACHED_FIELD_NUMBER: _ClassVar[int]
    BUILDS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    LAST_BUILD_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ERROR_RANGE_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_REMOTE_FIELD_NUMBER: _ClassVar[int]
    UNREAD_BUILD_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    context: Context
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    error: str
    error_line: int
    all_cached: bool
    builds_recorded: int
    last_build_unix_ms: int
    notes: _containers.RepeatedScalarFieldContainer[str]
    context_digest: str
    error_range: Range
    assumed_remote: _containers.RepeatedScalarFieldContainer[str]
    unread_build_unix_ms: int
    def __init__(self, context: _Optional[_Union[Context, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., error: _Optional[str] = ..., error_line: _Optional[int] = ..., all_cached: _Optional[bool] = ..., builds_recorded: _Optional[int] = ..., last_build_unix_ms: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ..., context_digest: _Optional[str] = ..., error_range: _Optional[_Union[Range, _Mapping]] = ..., assumed_remote: _Optional[_Iterable[str]] = ..., unread_build_unix_ms: _Optional[int] = ...) -> None: ...

class GetDaemonStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DaemonStatus(_message.Message):
    __slots__ = ("version", "pid", "socket_path", "state_dir", "contexts", "roots", "memory_rss_bytes", "queue_depth", "uptime_seconds", "activity", "log_file", "idle_timeout_seconds", "predictions")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    SOCKET_PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    LOG_FILE_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    version: str
    pid: int
    socket_path: str
    state_dir: str
    contexts: int
    roots: _containers.RepeatedCompositeFieldContainer[WatchedRoot]
    memory_rss_bytes: int
    queue_depth: int
    uptime_seconds: float
    activity: str
    log_file: str
    idle_timeout_seconds: float
    predictions: PredictionStats
    def __init__(self, version: _Optional[str] = ..., pid: _Optional[int] = ..., socket_path: _Optional[str] = ..., state_dir: _Optional[str] = ..., contexts: _Optional[int] = ..., roots: _Optional[_Iterable[_Union[WatchedRoot, _Mapping]]] = ..., memory_rss_bytes: _Optional[int] = ..., queue_depth: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., activity: _Optional[str] = ..., log_file: _Optional[str] = ..., idle_timeout_seconds: _Optional[float] = ..., predictions: _Optional[_Union[PredictionStats, _Mapping]] = ...) -> None: ...

class PredictionStats(_message.Message):
    __slots__ = ("checked", "steps", "agreed", "unknown", "recent_disagreements", "builds_learned")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    AGREED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    RECENT_DISAGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    BUILDS_LEARNED_FIELD_NUMBER: _ClassVar[int]
    checked: int
    steps: int
    agreed: int
    unknown: int
    recent_disagreements: _containers.RepeatedCompositeFieldContainer[PredictionCheck]
    builds_learned: int
    def __init__(self, checked: _Optional[int] = ..., steps: _Optional[int] = ..., agreed: _Optional[int] = ..., unknown: _Optional[int] = ..., recent_disagreements: _Optional[_Iterable[_Union[PredictionCheck, _Mapping]]] = ..., builds_learned: _Optional[int] = ...) -> None: ...

class WatchedRoot(_message.Message):
    __slots__ = ("path", "files", "directories", "healthy", "message", "files_hashed", "bytes_hashed")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILES_HASHED_FIELD_NUMBER: _ClassVar[int]
    BYTES_HASHED_FIELD_NUMBER: _ClassVar[int]
    path: str
    files: int
    directories: int
    healthy: bool
    message: str
    files_hashed: int
    bytes_hashed: int
    def __init__(self, path: _Optional[str] = ..., files: _Optional[int] = ..., directories: _Optional[int] = ..., healthy: _Optional[bool] = ..., message: _Optional[str] = ..., files_hashed: _Optional[int] = ..., bytes_hashed: _Optional[int] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
