"""A real full disk for the tests: a small tmpfs (root only; skipped elsewhere), and filling it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.core.config import Settings
from tests.factories import SECRET


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs, unmounted and removed at the end whatever happens."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)]).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=True)
        mnt.rmdir()


def fill(folder: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def leave_free(folder: Path, free: int, name: str = "filler") -> Path:
    """Take the disk's room but `free` bytes with one file (fallocate: fast, exact)."""
    st = os.statvfs(folder)
    filler = folder / name
    subprocess.run(
        ["fallocate", "-l", str(max(st.f_bavail * st.f_frsize - free, 1)), str(filler)], check=True
    )
    return filler


def no_internals(text: str, disk: Path) -> None:
    """An answer that names no path and quotes no DuckDB or OS text."""
    assert str(disk) not in text and "/tmp" not in text
    assert "duckdb" not in text.lower() and "No space left" not in text and "wal" not in text.lower()


def backups_on(folder: Path, store_dir: Path) -> Settings:
    """An app whose backup folder is `folder` (a small disk, say), its store in `store_dir`; no
    scheduler, a 1 MiB reserve."""
    return Settings(
        db_path=store_dir / "store.duckdb",
        webui_secret_key=SECRET,
        port=0,
        scheduler_enabled=False,
        backup_dir=folder,
        disk_reserve="1MiB",
    )
