"""Where exports go: a local folder (default) or an S3-compatible bucket, behind one small interface.

Both take whole files that were first written to a local staging folder, so a reader never
sees a half-written file: locally a staged file is renamed into place (same filesystem, atomic);
on S3 an object becomes visible only when its upload completes.

Locally each partition `<table>/date=X/` is a real folder of immutable files with unique names
(every engine lists it, `**` globs included). An append renames one more file into it. A
rewrite (compaction, deletes) prepares a complete new folder in `_staging/` and exchanges it
with the partition in one `renameat2(RENAME_EXCHANGE)` (swap.py), so a reader's listing holds
either the old files or the new ones, never both (docs/exports.md says the one way it can hold
neither). Nothing temporary is ever put inside a table folder: DuckDB and polars list hidden
names too, pyarrow opens any name. An export of the older layout (`date=X` a symlink into
`_versions/`) is migrated by `upgrade`.

S3 has no rename and no multi-object atomic swap: a rewrite uploads the new files, then
deletes the old ones. See docs/exports.md for what a reader can rely on there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import pyarrow.fs as pafs

from analytics.core.config import Settings
from analytics.core.errors import InvalidInput
from analytics.exports.layout import HIDDEN, STAGING, VERSIONS, parse_partition, partition_name
from analytics.exports.swap import swap_in

RETIRED_SUFFIX = ".retired"


@dataclass(frozen=True, slots=True, order=True)
class FileEntry:
    path: str  # relative to the target root, "/"-separated
    size: int


class Target(Protocol):
    url: str
    fs: pafs.FileSystem
    root: str  # the root as a path of `fs`

    def staging_root(self) -> Path:
        """A local folder for files before they are published (same filesystem when local)."""
        ...

    def partitions(self, table: str) -> dict[date, list[FileEntry]]: ...

    def replace_partition(self, table: str, day: date, staged: list[Path]) -> list[str]:
        """Make `staged` the partition's only files (a new partition, a rewrite, a compaction);
        answers their paths relative to the root."""
        ...

    def append_partition(self, table: str, day: date, staged: list[Path], prefix: str = "") -> list[str]:
        """Add `staged` to the partition under new unique names starting with `prefix`."""
        ...

    def drop_partition(self, table: str, day: date) -> None: ...

    def put_file(self, rel_path: str, staged: Path) -> None:
        """Replace one whole file at `rel_path` atomically."""
        ...

    def upgrade(self) -> None:
        """Bring a target written by an older layout up to date (before a writer lists it)."""
        ...

    def collect_garbage(self, grace_s: float) -> int: ...


def _uuid() -> str:
    return str(uuid.uuid4())


class LocalTarget:
    def __init__(self, root: Path, url: str) -> None:
        self.url = url
        self.root_path = root.resolve()
        self.root = str(self.root_path)
        self.fs: pafs.FileSystem = pafs.LocalFileSystem()

    def staging_root(self) -> Path:
        path = self.root_path / STAGING
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _entry(self, table: str, day: date) -> Path:
        return self.root_path / table / partition_name(day)

    def _prepared(self) -> Path:
        """A fresh folder in staging: same filesystem as the partitions, outside every table
        folder (no engine lists it, whatever its glob)."""
        folder = self.staging_root() / f"part-{_uuid()}"
        folder.mkdir()
        return folder

    def partitions(self, table: str) -> dict[date, list[FileEntry]]:
        found: dict[date, list[FileEntry]] = {}
        folder = self.root_path / table
        if not folder.is_dir():
            return found
        for entry in os.scandir(folder):
            day = parse_partition(entry.name)
            if day is None or not entry.is_dir():
                continue
            found[day] = sorted(
                FileEntry(f"{table}/{entry.name}/{f.name}", f.stat().st_size)
                for f in os.scandir(entry.path)
                if f.name.endswith(".parquet") and not f.name.startswith(HIDDEN)
            )
        return found

    def replace_partition(self, table: str, day: date, staged: list[Path], prefix: str = "") -> list[str]:
        """The new files go into a prepared folder, which then takes the partition's place in one
        exchange; the old folder is deleted at once (no reader can reach it by its old path)."""
        entry = self._entry(table, day)
        prepared = self._prepared()
        names = self._move(staged, prepared, prefix)
        entry.parent.mkdir(parents=True, exist_ok=True)
        _remove(swap_in(prepared, entry))
        return [f"{table}/{entry.name}/{n}" for n in names]

    def _move(self, staged: list[Path], folder: Path, prefix: str = "") -> list[str]:
        """Rename each staged file into `folder` under a new unique name (atomic: whole or absent)."""
        names = []
        for f in staged:
            name = f"{prefix}{_uuid()}.parquet"
            os.rename(f, folder / name)
            names.append(name)
        return names

    def append_partition(self, table: str, day: date, staged: list[Path], prefix: str = "") -> list[str]:
        entry = self._entry(table, day)
        if entry.is_symlink():
            self._migrate(entry)
        if not entry.is_dir():
            return self.replace_partition(table, day, staged, prefix)
        return [f"{table}/{entry.name}/{n}" for n in self._move(staged, entry, prefix)]

    def drop_partition(self, table: str, day: date) -> None:
        entry = self._entry(table, day)
        if not os.path.lexists(entry):
            return
        aside = self.staging_root() / f"dropped-{_uuid()}"
        os.rename(entry, aside)  # the whole day disappears at once
        _remove(aside)

    def put_file(self, rel_path: str, staged: Path) -> None:
        dest = self.root_path / rel_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)

    def upgrade(self) -> None:
        """Turn partitions of the old layout (a `date=` symlink into `_versions/`) into real
        folders. Each swap keeps the files and their names, so a reader sees no change at all."""
        for table in os.scandir(self.root_path) if self.root_path.is_dir() else ():
            if table.name.startswith(HIDDEN) or not table.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(table.path):
                if entry.is_symlink() and parse_partition(entry.name) is not None:
                    self._migrate(Path(entry.path))
        versions = self.root_path / VERSIONS
        if versions.is_dir():  # prune the folders the migration emptied (retired versions stay)
            for folder, _, _ in sorted(os.walk(versions), reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)

    def _migrate(self, link: Path) -> None:
        real = Path(os.path.realpath(link))
        if not real.is_dir():
            os.unlink(link)  # dangling: nothing is lost, the next cycle writes the day again
        elif real.is_relative_to(self.root_path / VERSIONS):
            _remove(swap_in(real, link))
        # a link this exporter did not make is left alone (a rewrite replaces the link itself)

    def collect_garbage(self, grace_s: float) -> int:
        """Delete what the old layout left in `_versions/` (folders no partition links to),
        `grace_s` after they were first seen so: a reader of an older `_manifest.json` may still
        read them."""
        versions = self.root_path / VERSIONS
        if not versions.is_dir():
            return 0
        deleted = 0
        now = time.time()
        for table_dir in versions.iterdir():
            live = set()
            links = self.root_path / table_dir.name
            if links.is_dir():
                live = {Path(os.path.realpath(e.path)) for e in os.scandir(links) if e.is_symlink()}
            for part in table_dir.iterdir():
                for version in part.iterdir():
                    if not version.is_dir() or version.is_symlink():
                        continue
                    marker = version.with_name(version.name + RETIRED_SUFFIX)
                    if version.resolve() in live:
                        marker.unlink(missing_ok=True)
                        continue
                    if not marker.exists():
                        marker.write_text(str(now))
                    elif now - marker.stat().st_mtime >= grace_s:
                        shutil.rmtree(version, ignore_errors=True)
                        marker.unlink(missing_ok=True)
                        deleted += 1
                with contextlib.suppress(OSError):
                    part.rmdir()  # only when empty
            with contextlib.suppress(OSError):
                table_dir.rmdir()
        with contextlib.suppress(OSError):
            versions.rmdir()
        return deleted


def _remove(path: Path | None) -> None:
    """Delete what a swap put aside: a folder of retired files, or an old layout's link."""
    if path is None:
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


class ObjectStoreTarget:
    def __init__(self, fs: pafs.FileSystem, root: str, url: str, staging: Path) -> None:
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self._staging = staging

    def staging_root(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def _key(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def partitions(self, table: str) -> dict[date, list[FileEntry]]:
        found: dict[date, list[FileEntry]] = {}
        selector = pafs.FileSelector(self._key(table), recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.path.endswith(".parquet"):
                continue
            rel = info.path[len(self.root) + 1 :]
            parts = rel.split("/")
            day = parse_partition(parts[1]) if len(parts) == 3 else None
            if day is not None:
                found.setdefault(day, []).append(FileEntry(rel, info.size or 0))
        return found

    def _upload(self, staged: Path, rel: str) -> str:
        with staged.open("rb") as src, self.fs.open_output_stream(self._key(rel)) as out:
            shutil.copyfileobj(src, out, 8 * 1024 * 1024)
        staged.unlink()
        return rel

    def replace_partition(self, table: str, day: date, staged: list[Path]) -> list[str]:
        old = self.partitions_of(table, day)
        published = self.append_partition(table, day, staged)
        for entry in old:
            self.fs.delete_file(self._key(entry.path))
        return published

    def partitions_of(self, table: str, day: date) -> list[FileEntry]:
        prefix = self._key(f"{table}/{partition_name(day)}")
        selector = pafs.FileSelector(prefix, recursive=False, allow_not_found=True)
        return [
            FileEntry(i.path[len(self.root) + 1 :], i.size or 0)
            for i in self.fs.get_file_info(selector)
            if i.type == pafs.FileType.File and i.path.endswith(".parquet")
        ]

    def append_partition(self, table: str, day: date, staged: list[Path], prefix: str = "") -> list[str]:
        return [self._upload(f, f"{table}/{partition_name(day)}/{prefix}{_uuid()}.parquet") for f in staged]

    def drop_partition(self, table: str, day: date) -> None:
        for entry in self.partitions_of(table, day):
            self.fs.delete_file(self._key(entry.path))

    def put_file(self, rel_path: str, staged: Path) -> None:
        self._upload(staged, rel_path)

    def upgrade(self) -> None:
        pass  # the object layout never changed

    def collect_garbage(self, grace_s: float) -> int:
        return 0  # old objects are deleted right after their replacement is uploaded


def open_target(settings: Settings) -> Target:
    """The target the settings name: `export_url` a folder (default data/exports) or s3://bucket/prefix."""
    url = settings.export_url or str(settings.data_dir / "exports")
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else url)
        return LocalTarget(path, url)
    if parsed.scheme != "s3":
        raise InvalidInput(
            f"export_url must be a folder or s3://bucket/prefix, not {url!r}", field="export_url"
        )
    if not parsed.netloc:
        raise InvalidInput(f"export_url {url!r} names no bucket", field="export_url")
    endpoint = urlparse(settings.export_s3_endpoint) if settings.export_s3_endpoint else None
    fs = pafs.S3FileSystem(
        access_key=settings.export_s3_access_key,
        secret_key=settings.export_s3_secret_key,
        region=settings.export_s3_region,
        endpoint_override=endpoint.netloc if endpoint else None,
        # pyarrow itself refuses a scheme other than http(s); checking it earlier would change behaviour
        scheme=endpoint.scheme if endpoint else "https",  # type: ignore[arg-type]
        connect_timeout=settings.export_s3_timeout_s,
        request_timeout=settings.export_s3_timeout_s,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
    )
    root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    return ObjectStoreTarget(fs, root, url, settings.data_dir / "export-staging")
