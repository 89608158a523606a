"""The Merkle node encoding. Its bytes are stored (recorded builds, the hash
cache), so they are pinned here: a change would orphan every saved state."""

from __future__ import annotations

import hashlib

from ctxwatchd.context.nodes import Child, decode, encode_dir, encode_file
from ctxwatchd.context.records import KIND_DIR, KIND_FILE, KIND_SYMLINK, FileRecord

FILE = FileRecord(KIND_FILE, 0o4755, 1234, hashlib.sha256(b"hello").digest(), "", ())
LINK = FileRecord(KIND_SYMLINK, 0o777, 0, b"", "../t\u00e9st", (("user.b", b"2"), ("user.a", b"")))


def test_a_file_node_is_tagged_fields_each_with_its_length() -> None:
    assert encode_file(FILE) == (
        b"F"
        b"\0\0\0\x01f"
        b"\0\0\0\x0c"
        + (0o4755).to_bytes(4, "big")
        + (1234).to_bytes(8, "big")
        + b"\0\0\0\x20"
        + FILE.content
        + b"\0\0\0\0"
    )


def test_a_symlink_node_holds_its_target_and_attributes_in_order() -> None:
    target = "../t\u00e9st".encode()
    assert encode_file(LINK) == (
        b"F"
        b"\0\0\0\x01l"
        b"\0\0\0\x0c"
        + (0o777).to_bytes(4, "big")
        + bytes(8)
        + b"\0\0\0\0"
        + len(target).to_bytes(4, "big")
        + target
        + b"\0\0\0\x06user.b"
        + b"\0\0\0\x012"
        + b"\0\0\0\x06user.a"
        + b"\0\0\0\0"
    )


def test_nodes_decode_to_what_was_encoded() -> None:
    assert decode(encode_file(FILE)).record == FILE
    assert decode(encode_file(LINK)).record == LINK
    children = (Child("a", KIND_FILE, bytes(32)), Child("d\u00e9", KIND_DIR, bytes(range(32))))
    node = decode(encode_dir(0o755, children))
    assert (node.kind, node.mode, node.children) == (KIND_DIR, 0o755, children)
