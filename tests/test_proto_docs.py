"""The contract documents itself: every service, RPC, message, field, enum and
enum value in proto/ctxwatch/v1 has a comment (a client in any language reads
the .proto, not this project's Python)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "ctxwatch/v1/ctxwatch.proto"
# FileDescriptorProto field numbers (descriptor.proto): where each kind of element lives.
MESSAGE, ENUM, SERVICE = 4, 5, 6
FIELD, ONEOF, ENUM_VALUE, METHOD = 2, 8, 2, 2


def _described(include: Path, tmp_path: Path) -> tuple[descriptor_pb2.FileDescriptorProto, dict[tuple[int, ...], str]]:
    out = tmp_path / "set.pb"
    code = protoc.main(["protoc", f"-I{include}", "--include_source_info", f"--descriptor_set_out={out}", PROTO])
    assert code == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    [file] = [f for f in files.file if f.name == PROTO]
    comments = {
        tuple(loc.path): (loc.leading_comments + loc.trailing_comments).strip()
        for loc in file.source_code_info.location
    }
    return file, comments


def _elements(file: descriptor_pb2.FileDescriptorProto) -> list[tuple[str, tuple[int, ...]]]:
    found: list[tuple[str, tuple[int, ...]]] = []
    for i, message in enumerate(file.message_type):
        found.append((f"message {message.name}", (MESSAGE, i)))
        found += [(f"field {message.name}.{f.name}", (MESSAGE, i, FIELD, j)) for j, f in enumerate(message.field)]
        # Map fields come as generated *Entry types, documented by their field.
        nested = [n.name for n in message.nested_type if not n.options.map_entry]
        assert not nested and not message.enum_type, "nested types: extend this test"
    for i, enum in enumerate(file.enum_type):
        found.append((f"enum {enum.name}", (ENUM, i)))
        found += [(f"enum value {v.name}", (ENUM, i, ENUM_VALUE, j)) for j, v in enumerate(enum.value)]
    for i, service in enumerate(file.service):
        found.append((f"service {service.name}", (SERVICE, i)))
        found += [(f"rpc {m.name}", (SERVICE, i, METHOD, j)) for j, m in enumerate(service.method)]
    return found


def test_every_element_of_the_proto_has_a_comment(tmp_path):
    file, comments = _described(ROOT / "proto", tmp_path)
    elements = _elements(file)
    assert len(elements) > 150  # the whole contract was walked, not an empty file
    missing = [name for name, path in elements if not comments.get(path)]
    assert missing == []


def test_a_missing_comment_is_noticed(tmp_path):
    """The check can fail: a copy of the proto with one comment removed is caught."""
    source = (ROOT / "proto" / PROTO).read_text()
    stripped = source.replace("  string target = 5;      // empty: the last stage\n", "  string target = 5;\n", 1)
    assert stripped != source
    copy = tmp_path / "proto" / PROTO
    copy.parent.mkdir(parents=True)
    copy.write_text(stripped)
    file, comments = _described(tmp_path / "proto", tmp_path)
    missing = [name for name, path in _elements(file) if not comments.get(path)]
    assert missing == ["field Context.target"]
