"""Bad requests and broken contexts, through the real client against the shared daemon.

Each bad input must come back as the right gRPC status with a message that
names the problem, or, for a context that cannot be evaluated, as an error
inside the report; and the daemon must still answer afterwards.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from support.contexts import make_context

from ctxwatch.client import CtxwatchError, channel_target
from ctxwatch_api.v1 import ctxwatch_pb2 as pb
from ctxwatch_api.v1 import ctxwatch_pb2_grpc as pb_grpc

DOCKERFILE = """\
FROM scratch
COPY app.txt /app/app.txt
RUN ["/bin/true"]
"""
FILES = {"app.txt": "hello\n"}


def unique(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_still_serving(daemon) -> None:
    """The daemon process is alive and answers (a crash would raise or change the pid)."""
    assert daemon.process.poll() is None, "ctxwatchd exited"
    assert isinstance(daemon.client.list(), list)
    assert daemon.client.daemon_status().pid == daemon.process.pid


def raw_register(daemon, request: pb.RegisterContextRequest) -> grpc.RpcError:
    """Send a RegisterContext the Python client would not build (it makes paths absolute)."""
    with grpc.insecure_channel(channel_target(daemon.socket)) as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.CtxwatchStub(channel).RegisterContext(request, timeout=30)
    return caught.value


# -- RegisterContext ------------------------------------------------------------------


def test_relative_path_is_invalid_argument(shared_daemon):
    err = raw_register(shared_daemon, pb.RegisterContextRequest(path="some/relative/dir", name=unique()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "some/relative/dir" in err.details() and "absolute" in err.details()
    assert_still_serving(shared_daemon)


def test_empty_path_is_invalid_argument(shared_daemon):
    err = raw_register(shared_daemon, pb.RegisterContextRequest(path="", name=unique()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in err.details()
    assert_still_serving(shared_daemon)


def test_missing_folder_is_not_found(shared_daemon, tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.register(str(missing), name=unique())
    assert caught.value.code == "NOT_FOUND"
    assert str(missing) in caught.value.message
    assert_still_serving(shared_daemon)


def test_a_file_instead_of_a_folder_is_invalid_argument(shared_daemon, tmp_path):
    a_file = tmp_path / "Dockerfile"
    a_file.write_text("FROM scratch\n")
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.register(str(a_file), name=unique())
    assert caught.value.code == "INVALID_ARGUMENT"
    assert str(a_file) in caught.value.message and "not a folder" in caught.value.message
    assert_still_serving(shared_daemon)


def test_missing_dockerfile_is_failed_precondition(shared_daemon, tmp_path):
    folder = tmp_path / "ctx"
    folder.mkdir()
    (folder / "app.txt").write_text("x\n")
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.register(str(folder), name=unique())
    assert caught.value.code == "FAILED_PRECONDITION"
    assert str(folder / "Dockerfile") in caught.value.message
    assert all(c.path != str(folder) for c in shared_daemon.client.list())
    assert_still_serving(shared_daemon)


def test_same_name_for_another_folder_is_already_exists(shared_daemon, tmp_path):
    name = unique()
    first = make_context(tmp_path / "first", DOCKERFILE, FILES)
    second = make_context(tmp_path / "second", DOCKERFILE, FILES)
    shared_daemon.client.register(str(first), name=name)
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.register(str(second), name=name)
    assert caught.value.code == "ALREADY_EXISTS"
    assert name in caught.value.message and str(first) in caught.value.message
    # The first registration is untouched.
    [context] = [c for c in shared_daemon.client.list() if c.name == name]
    assert context.path == str(first)
    assert_still_serving(shared_daemon)


def test_bad_build_arg_name_is_invalid_argument(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.register(str(folder), build_args={"A B": "1"}, name=unique())
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "'A B'" in caught.value.message and "build_args" in caught.value.message
    assert_still_serving(shared_daemon)


def test_bad_build_arg_name_in_report_options_is_invalid_argument(shared_daemon, tmp_path):
    name = unique()
    shared_daemon.client.register(str(make_context(tmp_path / "ctx", DOCKERFILE, FILES)), name=name)
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.reports([pb.ContextRef(name=name)], pb.BuildOptions(build_args={"A B": "1"}))
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "'A B'" in caught.value.message
    assert_still_serving(shared_daemon)


# -- unknown contexts -------------------------------------------------------------------


@pytest.mark.parametrize("call", ["reports", "mark_built", "unregister"])
def test_unknown_context_name_is_not_found(shared_daemon, call):
    name = unique("nobody")
    ref = pb.ContextRef(name=name)
    client = shared_daemon.client
    with pytest.raises(CtxwatchError) as caught:
        {
            "reports": lambda: client.reports([ref]),
            "mark_built": lambda: client.mark_built(ref),
            "unregister": lambda: client.unregister(ref),
        }[call]()
    assert caught.value.code == "NOT_FOUND"
    assert repr(name) in caught.value.message
    assert_still_serving(shared_daemon)


def test_unknown_context_path_is_not_found(shared_daemon, tmp_path):
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.reports([pb.ContextRef(path=str(tmp_path))])
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.message.endswith(f"is registered for {tmp_path} (register it: ctxwatch add {tmp_path})")
    assert_still_serving(shared_daemon)


def test_empty_context_ref_is_invalid_argument(shared_daemon):
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.reports([pb.ContextRef()])
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "context" in caught.value.message
    assert_still_serving(shared_daemon)


# -- contexts that cannot be evaluated: errors inside the report ------------------------


def register_and_report(daemon, folder: Path, options: pb.BuildOptions | None = None) -> pb.Report:
    name = unique()
    daemon.client.register(str(folder), name=name)
    [report] = daemon.client.reports([pb.ContextRef(name=name)], options)
    assert report.context.name == name
    return report


def test_unterminated_heredoc_is_a_report_error_with_its_line(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", "FROM scratch\nCOPY app.txt /a\nRUN <<EOF\necho hi\n", FILES)
    report = register_and_report(shared_daemon, folder)
    assert report.error, "an unterminated heredoc must be reported"
    assert report.error_line == 3
    assert "line 3" in report.error and "heredoc" in report.error
    assert not report.all_cached and not report.steps
    assert_still_serving(shared_daemon)


def test_dockerfile_deleted_after_registration_is_a_report_error(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", DOCKERFILE, FILES)
    name = unique()
    shared_daemon.client.register(str(folder), name=name)
    [before] = shared_daemon.client.reports([pb.ContextRef(name=name)])
    assert not before.error and len(before.steps) == 2
    (folder / "Dockerfile").unlink()
    [report] = shared_daemon.client.reports([pb.ContextRef(name=name)])
    assert "not found" in report.error and str(folder / "Dockerfile") in report.error
    assert not report.all_cached and not report.steps
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.mark_built(pb.ContextRef(name=name))
    assert caught.value.code == "FAILED_PRECONDITION"
    assert_still_serving(shared_daemon)


def test_copy_source_that_matches_nothing_is_a_step_error(shared_daemon, tmp_path):
    folder = make_context(
        tmp_path / "ctx",
        'FROM scratch\nCOPY gone.txt /gone.txt\nCOPY app.txt /app.txt\nRUN ["/bin/true"]\n',
        {"app.txt": "a\n", "gone.txt": "g\n"},
    )
    name = unique()
    ref = pb.ContextRef(name=name)
    shared_daemon.client.register(str(folder), name=name)
    built = shared_daemon.client.mark_built(ref)
    assert built.report.all_cached and built.steps_recorded == 3
    (folder / "gone.txt").unlink()
    [report] = shared_daemon.client.reports([ref])
    assert not report.error
    first, *after = report.steps
    assert first.status == pb.STEP_STATUS_ERROR
    assert first.line == 2
    assert "not found" in first.error and "gone.txt" in first.error
    assert len(after) == 2
    # Everything after the failing step was built before, yet BuildKit never gets there.
    for step in after:
        assert step.status != pb.STEP_STATUS_CACHED, step
    assert not report.all_cached
    assert_still_serving(shared_daemon)


def test_unknown_target_is_a_report_error_naming_it(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", "FROM scratch AS base\nCOPY app.txt /a\nFROM base AS final\n", FILES)
    report = register_and_report(shared_daemon, folder, pb.BuildOptions(target="no-such-stage"))
    assert "no-such-stage" in report.error
    assert not report.steps and not report.all_cached
    assert_still_serving(shared_daemon)


def test_lone_exclamation_mark_in_dockerignore_is_a_report_error_with_its_line(shared_daemon, tmp_path):
    folder = make_context(tmp_path / "ctx", DOCKERFILE, {**FILES, ".dockerignore": "*.log\n!\n"})
    report = register_and_report(shared_daemon, folder)
    assert report.error, "a lone '!' is refused by Docker and must be reported"
    assert report.error_line == 2
    assert ".dockerignore" in report.error and "line 2" in report.error
    assert not report.all_cached
    assert_still_serving(shared_daemon)


def test_a_broken_context_does_not_hide_the_others(shared_daemon, tmp_path):
    good, bad = unique("good"), unique("bad")
    shared_daemon.client.register(str(make_context(tmp_path / "good", DOCKERFILE, FILES)), name=good)
    shared_daemon.client.register(str(make_context(tmp_path / "bad", "FROM scratch\nRUN <<EOF\n", FILES)), name=bad)
    reports = shared_daemon.client.reports([pb.ContextRef(name=bad), pb.ContextRef(name=good)])
    assert [r.context.name for r in reports] == [bad, good]
    assert reports[0].error and not reports[1].error
    assert len(reports[1].steps) == 2
    assert_still_serving(shared_daemon)


@pytest.mark.parametrize("field", ["status", "cause"])
def test_a_prediction_step_with_an_unknown_status_or_cause_is_invalid_argument(shared_daemon, tmp_path, field):
    name = unique()
    shared_daemon.client.register(str(make_context(tmp_path / "ctx", DOCKERFILE, FILES)), name=name)
    [prediction] = shared_daemon.client.reports([name])
    setattr(prediction.steps[1], field, 99)  # an enum value this daemon does not know
    run = pb.BuildRun(steps=[pb.ObservedStep(line=2, completed=True)], prediction=prediction)
    with pytest.raises(CtxwatchError) as caught:
        shared_daemon.client.mark_built(name, run=run)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert f"run.prediction.steps[1].{field}: 99" in caught.value.message
    assert shared_daemon.client.reports([name])[0].builds_recorded == 0  # nothing recorded
    assert_still_serving(shared_daemon)
