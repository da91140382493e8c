"""swap.py: a prepared folder takes a partition's place in one exchange (or two renames where
the system cannot exchange)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from analytics.exports import swap


def folder(path: Path, *names: str) -> Path:
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_text(name)
    return path


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path))


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    a, b = folder(tmp_path / "a", "old.parquet"), folder(tmp_path / "b", "new.parquet")
    assert swap.exchange(a, b)
    assert listing(a) == ["new.parquet"] and listing(b) == ["old.parquet"]


def test_exchange_of_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info:
        swap.exchange(folder(tmp_path / "a"), tmp_path / "missing")
    assert info.value.errno == errno.ENOENT


def test_swap_in_replaces_a_folder_and_hands_back_the_old_one(tmp_path: Path) -> None:
    dest = folder(tmp_path / "date=2026-11-01", "old.parquet")
    prepared = folder(tmp_path / "staging" / "p", "new.parquet")
    old = swap.swap_in(prepared, dest)
    assert old is not None and listing(old) == ["old.parquet"]
    assert listing(dest) == ["new.parquet"] and not dest.is_symlink()


def test_swap_in_a_new_day_and_over_an_old_layout_link(tmp_path: Path) -> None:
    dest = tmp_path / "executions" / "date=2026-11-01"
    dest.parent.mkdir()
    assert swap.swap_in(folder(tmp_path / "p1", "a.parquet"), dest) is None
    assert listing(dest) == ["a.parquet"]
    # the old layout: the partition a symlink to a version folder; the folder takes its place
    version = folder(tmp_path / "_versions" / "v1", "b.parquet")
    link = tmp_path / "executions" / "date=2026-11-02"
    link.symlink_to(os.path.relpath(version, link.parent))
    old = swap.swap_in(version, link)
    assert old == version and old.is_symlink()
    assert link.is_dir() and not link.is_symlink() and listing(link) == ["b.parquet"]


def test_without_the_exchange_two_renames_give_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another OS or a filesystem refusing RENAME_EXCHANGE: the documented fallback."""
    monkeypatch.setattr(swap, "_renameat2", None)
    assert not swap.exchange(folder(tmp_path / "a"), folder(tmp_path / "b"))
    dest = folder(tmp_path / "date=2026-11-01", "old.parquet")
    old = swap.swap_in(folder(tmp_path / "p", "new.parquet"), dest)
    assert old is not None and listing(old) == ["old.parquet"] and listing(dest) == ["new.parquet"]
