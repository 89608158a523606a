"""A file's record and the stat key it is valid for always come as a consistent pair, whatever the path became
between its listing and its read; the file is read through one descriptor opened on the path itself."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ctxwatchd.context.records import KIND_DIR, KIND_FILE, KIND_SYMLINK, read_record, stat_key


def _listed(path: Path) -> bytes:
    return stat_key(os.lstat(path))


def test_a_file_read_as_listed_gives_its_content_attributes_and_key(tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_bytes(b"hello\n")
    file.chmod(0o640)
    os.setxattr(file, "user.note", b"kept")
    record, key = read_record(str(file), _listed(file))
    assert (record.kind, record.mode, record.size) == (KIND_FILE, 0o640, 6)
    assert record.content == hashlib.sha256(b"hello\n").digest()
    assert record.xattrs == (("user.note", b"kept"),)
    assert key == _listed(file)


def test_a_file_rewritten_after_its_listing_is_read_with_its_new_key(tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_bytes(b"old")
    listed = _listed(file)
    file.write_bytes(b"new and longer")
    record, key = read_record(str(file), listed)
    assert record.content == hashlib.sha256(b"new and longer").digest()
    assert record.size == len(b"new and longer")
    assert key == _listed(file) != listed


def test_a_file_replaced_by_a_symlink_after_its_listing_is_recorded_as_the_symlink(tmp_path: Path) -> None:
    """The target is never read as if it were the file: the open does not follow the link."""
    file, target = tmp_path / "a.txt", tmp_path / "target.txt"
    file.write_bytes(b"file")
    target.write_bytes(b"the target's content")
    listed = _listed(file)
    file.unlink()
    file.symlink_to(target.name)
    record, key = read_record(str(file), listed)
    assert (record.kind, record.link_target, record.content) == (KIND_SYMLINK, "target.txt", b"")
    assert key == _listed(file)


def test_a_file_replaced_by_a_folder_after_its_listing_is_recorded_as_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"file")
    listed = _listed(path)
    path.unlink()
    path.mkdir()
    record, key = read_record(str(path), listed)
    assert (record.kind, record.size, record.content) == (KIND_DIR, 0, b"")
    assert key == _listed(path)


def test_a_symlink_replaced_by_a_file_after_its_listing_is_read_as_the_file(tmp_path: Path) -> None:
    path = tmp_path / "link"
    path.symlink_to("elsewhere")
    listed = _listed(path)
    path.unlink()
    path.write_bytes(b"now a file")
    record, key = read_record(str(path), listed)
    assert (record.kind, record.link_target) == (KIND_FILE, "")
    assert record.content == hashlib.sha256(b"now a file").digest()
    assert key == _listed(path)
