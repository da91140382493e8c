"""Back the store up while it serves, and put a backup back while nothing holds the store.

A backup is one DuckDB file. It is copied on the writer (`Store.on_writer`), so no write
interleaves and the copy is one committed state: every run acknowledged before the backup began
is in it. `copy_database` checks both sides hold the same tables with the same row counts; the
copy is written under a temporary name, reopened to check its schema version, fsynced and only
then renamed to its final name, so a half backup never sits under the name asked for.

Room: a backup needs about the store's data (its used blocks, plus its WAL) free in the folder it
is written to, once. The store runs with DuckDB's automatic checkpoint off (the writer checkpoints
when there is room), and with it off the copy's one commit went to the copy's WAL whole (as large
as the data, uncompressed) and was then checkpointed into the file beside it, with the blocks
written ahead of the commit: about 4x the store at the peak. The copy is therefore made with
the automatic checkpoint on (`_copy_without_wal`): its commit is written straight into the file,
and no WAL is written. A folder without that room answers FolderFull saying how much it needs
and has.

A backup the CLI asks a server for (`flowhistory backup DEST` while a server holds the store) is
collected: the CLI moves it to DEST. It is written under a hidden name,
`.flowhistory-<time>.duckdb.uncollected-<token>`, when the CLI holds a lock on the marker
`.flowhistory-collect-<token>` in the same folder (`collecting`): one whose marker nobody holds
(the CLI was killed before it took the file) is removed at the next backup or server start, with
the partial files. An admin's backup (no marker) keeps its plain name and stays.

What is not in it, on purpose: the admin key file and the Open WebUI secret beside the store
(secrets, kept by the operator), `jobs.json` (status, rebuilt at start), and the Parquet exports
and retention archives (separate folders, see the README).

A restore copies the backup into a fresh file beside the store (reading every block, so a
damaged or truncated backup fails there, with the store untouched), checks it, keeps the old
store as `<db>.before-restore-<UTC time>` (a hard link: the store never leaves its path) and
renames the copy into place. It refuses while a
process holds the store (StoreLocked): DuckDB allows one process per file, and a server would
keep writing to the old one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from analytics.core import migrations
from analytics.core.errors import Conflict, FolderFull, FolderUnwritable, InvalidInput
from analytics.core.store import (
    NO_AUTO_CHECKPOINT,
    Connection,
    copy_database,
    copy_out,
    is_disk_full,
    open_alone,
    prepare_connection,
    sql_path,
)

MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
SUFFIX = ".duckdb"
if TYPE_CHECKING:
    from analytics.core.context import Context

log = logging.getLogger(__name__)

_ALIAS = "flowhistory_backup"
# `.<name>.partial-<pid>-<hex>` (and its `.wal`): a backup being written, or left by a crash;
# `.<db>.restoring-<pid>-<hex>`: a restore's copy of the backup, beside the store
_PARTIAL = re.compile(r"^\..+\.(?:partial|restoring)-(\d+)-[0-9a-f]+(\.wal)?\Z")
# a backup made for the CLI to collect, and the marker the collecting CLI holds a lock on
_TOKEN = re.compile(r"^[0-9a-f]{32}\Z")
_UNCOLLECTED = re.compile(r"^\.(flowhistory-.+\.duckdb)\.uncollected-([0-9a-f]{32})\Z")
_MARKER = re.compile(r"^\.flowhistory-collect-([0-9a-f]{32})\Z")
_MIB = 1 << 20
_MARGIN = 1 << 20  # the copy's headers and partly filled blocks, beside the store's data
_EAGER_CHECKPOINT = "0B"  # the copy's commit checkpointed at once: written to the file, no WAL
FULL_DETAIL = (
    "the backup folder's disk is full (FLOWHISTORY_BACKUP_DIR): a backup needs about {need} MiB "
    "free there (about the store's size) and it has {free} MiB. No backup was made and nothing "
    "was left there; the store is untouched. Free at least {more} MiB more there, or point the "
    "setting at a disk with room, and try again"
)
_RUNNING = threading.Lock()  # one backup at a time per process


@dataclass(frozen=True, slots=True)
class Backup:
    """A finished backup: where, how large, what it holds."""

    path: Path
    bytes: int
    runs: int
    tables: dict[str, int]
    schema_version: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Restored:
    """A finished restore: what is in place now, and where the store it replaced was kept."""

    db_path: Path
    previous: Path | None
    runs: int
    tables: dict[str, int]
    schema_version: int
    seconds: float


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    with contextlib.suppress(OSError):  # the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _scratch(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _discard(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _marker(token: str) -> str:
    return f".flowhistory-collect-{token}"


def _collector_alive(folder: Path, token: str) -> bool:
    """A CLI still holds the lock on the marker of `token` (it is collecting that backup)."""
    try:
        fd = os.open(folder / _marker(token), os.O_RDONLY)
    except OSError:
        return False  # no marker: the CLI ended (or never made one)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # also releases a lock just taken
    return False


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the half-written copies (`.<name>.partial-<pid>-<hex>` and their `.wal`) a backup
    killed mid-way left in `folder`, and the copies a killed restore left beside the store
    (`.<db>.restoring-<pid>-<hex>`, as large as the store and its WAL): those of processes that
    no longer run, and this process's own (a container's server often has the same pid at each
    start). Only when no backup or restore of this process runs: at server start (the backup
    folder and the store's), in `backup` before it copies and in `restore` before it does.
    Also the backups made for a CLI that never took them (`.flowhistory-….duckdb.uncollected-
    <token>`, a whole copy of the store) and their markers, when no process holds the marker's
    lock: the CLI was killed between the server's answer and the move to DEST.
    Answers what was removed; never raises (logged)."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    collecting: dict[str, bool] = {}
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        found = _PARTIAL.match(entry.name)
        if found:
            pid = int(found.group(1))
            if pid != os.getpid() and _pid_alive(pid):
                continue
        else:
            left = _UNCOLLECTED.match(entry.name)
            token = left.group(2) if left else (m.group(1) if (m := _MARKER.match(entry.name)) else None)
            if token is None:
                continue
            if token not in collecting:
                collecting[token] = _collector_alive(folder, token)
            if collecting[token]:
                continue
        try:
            os.unlink(entry.path)
        except OSError as exc:
            log.warning("could not remove the stale partial backup %s: %s", entry.path, exc)
            continue
        removed.append(Path(entry.path))
    if removed:
        log.warning(
            "removed %d partial or uncollected backup file(s) a stopped backup left in %s",
            len(removed),
            folder,
        )
    return removed


class Collect:
    """The CLI's claim on the backup a server makes for it: a marker file in the backup folder
    it holds a lock on (released by the kernel when the CLI ends, however it ends)."""

    def __init__(self, folder: Path, token: str, fd: int) -> None:
        self.folder = folder
        self.token = token
        self._fd = fd

    def close(self) -> None:
        with contextlib.suppress(OSError):
            (self.folder / _marker(self.token)).unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)


@contextlib.contextmanager
def collecting(folder: Path) -> Iterator[Collect | None]:
    """A marker in `folder` (the server's backup folder as this machine sees it) that tells the
    server the CLI will take the backup from there, locked while the CLI runs; None when no file
    can be made there (the backup then gets a plain name, as an admin's does)."""
    token = secrets.token_hex(16)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / _marker(token), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        yield None
        return
    claim = Collect(folder, token, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield claim
    finally:
        claim.close()


def kept_name(made: Path) -> Path:
    """The plain name of a backup made for the CLI (`flowhistory-<time>.duckdb`), or `made`."""
    found = _UNCOLLECTED.match(made.name)
    return made.with_name(found.group(1)) if found else made


def keep(made: Path) -> Path:
    """A backup made for the CLI that the CLI could not move: renamed to its plain name, so it
    stays as an admin's backup does (the next backup would remove it otherwise). Answers where
    it is; never raises."""
    kept = kept_name(made)
    if kept == made:
        return made
    try:
        os.replace(made, kept)
    except OSError as exc:
        log.warning("could not give the backup %s its plain name: %s", made, exc)
        return made
    return kept


def backup_name() -> str:
    """A name for a backup in the backup folder: sortable by time, never reused."""
    return f"flowhistory-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}{SUFFIX}"


def _schema_version(conn: Connection, database: str) -> int:
    """The version a flowhistory store is at; InvalidInput if it is not one."""
    has = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name IN"
        " ('schema_migrations', 'executions')",
        [database],
    ).fetchall()[0][0]
    if has != 2:
        raise InvalidInput("the file is a DuckDB database but not a flowhistory store")
    row = conn.execute(f'SELECT coalesce(max(version), 0) FROM "{database}".schema_migrations').fetchall()
    return int(row[0][0])


def room_needed(conn: Connection, db_path: Path) -> int:
    """About the room a backup of the store takes: its used blocks (a DuckDB file keeps the
    blocks deletes freed; the copy does not), its WAL (folded into the copy) and a margin."""
    row = conn.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = current_database()"
    ).fetchall()
    used = int(row[0][0]) * int(row[0][1]) if row else 0
    try:
        wal = db_path.with_name(db_path.name + ".wal").stat().st_size
    except (OSError, ValueError):
        wal = 0
    return used + wal + _MARGIN


def _copy_without_wal(conn: Connection, target: Path) -> dict[str, int]:
    """`copy_out` with DuckDB's automatic checkpoint on for its commit (the store runs with it
    off): the copy is written once, into its file, instead of into its WAL first and then the
    file (with the blocks written ahead of the commit, about 4x the store at the peak). Only the
    copy is written in that commit (the store is read), so only the copy is checkpointed; the
    store's setting is put back whatever happens. A copy that runs out of room fails its
    commit's checkpoint: DuckDB then gives up on the copy's database alone (detached, removed)."""
    conn.execute(f"SET checkpoint_threshold = '{_EAGER_CHECKPOINT}'")
    try:
        tables = copy_out(conn, target, _ALIAS)
    except BaseException:
        _store_checkpoint_back(conn)
        raise
    if not _store_checkpoint_back(conn):
        raise RuntimeError("the store's checkpoint setting could not be put back after the backup")
    return tables


def _store_checkpoint_back(conn: Connection) -> bool:
    """The store's own setting again (its automatic checkpoint off); False (logged) if refused."""
    try:
        conn.execute(f"SET checkpoint_threshold = '{NO_AUTO_CHECKPOINT}'")
    except Exception:
        log.exception("the store's checkpoint setting could not be put back after a backup")
        return False
    return True


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def full_detail(need: int, free: int) -> str:
    """The 507's text: what a backup needs and what the folder has, in MiB (rounded up/down)."""
    need_mib = -(-need // _MIB)
    free_mib = free // _MIB
    return FULL_DETAIL.format(need=need_mib, free=free_mib, more=max(need_mib - free_mib, 1))


def backup(ctx: Context, dest: Path) -> Backup:
    """Copy the open store to `dest` (which must not exist), consistent while it serves. The
    store may be below head (the CLI opens it unmigrated, so a backup before an upgrade is of the
    store as it was): the copy is at the store's version."""
    dest = Path(dest)
    check_dest(dest)
    if not _RUNNING.acquire(blocking=False):
        raise Conflict("a backup is running; try again when it has finished")
    started = time.monotonic()
    partial = _scratch(dest, "partial")
    need = 0
    source_version = 0

    def copy(conn: Connection) -> dict[str, int]:
        nonlocal need, source_version
        need = room_needed(conn, ctx.store.path)
        source_version = _schema_version(conn, conn.execute("SELECT current_database()").fetchall()[0][0])
        return _copy_without_wal(conn, partial)

    try:
        remove_stale_partials(dest.parent)
        tables = ctx.store.on_writer(copy)
        with duckdb.connect(str(partial)) as check:  # reopens as a store would, then checkpoints
            version = _schema_version(check, check.execute("SELECT current_database()").fetchall()[0][0])
        if version != source_version or partial.with_name(partial.name + ".wal").exists():
            raise RuntimeError(
                f"the backup copy reopened at version {version}, the store's is {source_version};"
                " it was discarded"
            )
        _fsync(partial)
        if _taken(dest):
            raise Conflict(f"{dest} appeared while the backup ran; the backup was discarded")
        os.replace(partial, dest)
        _fsync(dest)
    except BaseException as exc:
        _discard(partial)
        if isinstance(exc, Exception) and is_disk_full(exc):
            free = _free_bytes(dest.parent)
            log.error(
                "the backup folder %s has no room (needs about %d bytes, has %d): %s",
                dest.parent,
                need,
                free,
                exc,
            )
            raise FolderFull(full_detail(need, free)) from None
        raise
    finally:
        _RUNNING.release()
    return Backup(
        dest,
        dest.stat().st_size,
        tables.get("main.executions", 0),
        tables,
        version,
        round(time.monotonic() - started, 3),
    )


def _taken(dest: Path) -> bool:
    """Something is at `dest`: a dangling symlink too (`exists()` follows it and says no; the
    rename then replaced the link, and the hard link of a move through a server refused it)."""
    return os.path.lexists(dest)


def check_dest(dest: Path) -> None:
    """What a backup to `dest` needs, checked before anything is copied (the CLI checks it before
    asking a server too): no file there, and a folder a file can be written in."""
    if _taken(dest):
        raise Conflict(f"{dest} exists; a backup never overwrites a file")
    if not dest.parent.is_dir():
        raise InvalidInput(f"the folder {dest.parent} does not exist", field="dest")
    try:
        _probe(dest.parent)
    except OSError as exc:
        raise InvalidInput(
            f"no file can be written in {dest.parent}: {exc.strerror or exc}", field="dest"
        ) from None


def _probe(folder: Path) -> None:
    """A file made and removed in `folder` (made first): /proc, /sys or a read-only mount refuse
    only a real write, even to root."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".flowhistory-probe-"):
        pass


def backup_to_folder(ctx: Context, collect: str | None = None) -> Backup:
    """A backup under a generated name in the configured backup folder (`backups_dir`): what the
    admin endpoint does, so no path ever comes from a request. `collect` is the token of a CLI
    that will take the file: when its locked marker is in the folder (the CLI sees the same
    folder), the backup gets the hidden name `.flowhistory-….duckdb.uncollected-<token>`,
    removed at the next backup or start if the CLI never took it; else the plain name."""
    folder = ctx.settings.backups_dir
    try:
        _probe(folder)
    except OSError as exc:
        log.error("the backup folder %s cannot be written: %s", folder, exc)
        raise FolderUnwritable(
            f"the backup folder (FLOWHISTORY_BACKUP_DIR) cannot be written ({exc.strerror or exc}): "
            "no backup was made. Point the setting at a folder the server may write"
        ) from None
    name = backup_name()
    if collect is not None and _TOKEN.match(collect) and _collector_alive(folder, collect):
        name = f".{name}.uncollected-{collect}"
    return backup(ctx, folder / name)


def check_backup(src: Path) -> None:
    """Cheap checks before anything is opened: a regular file that starts like a DuckDB file."""
    if not src.is_file():
        raise InvalidInput(f"there is no backup file at {src}", field="src")
    with open(src, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[8:12] != MAGIC:
        raise InvalidInput(f"{src} is not a DuckDB database file (no DuckDB header)", field="src")


def restore(src: Path, db_path: Path) -> Restored:
    """Put the backup `src` in place of the store at `db_path`, keeping the old one beside it.

    StoreLocked while a process holds the store; InvalidInput for a file that is not a whole,
    readable flowhistory store of this version or older (the store is then untouched).
    """
    src, db_path = Path(src).resolve(), Path(db_path).resolve()
    started = time.monotonic()
    check_backup(src)
    if src == db_path:
        raise InvalidInput("the backup is the store itself", field="src")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    holder = _hold(db_path)  # keeps any server from opening the store while we swap it
    remove_stale_partials(db_path.parent)  # an earlier restore's copy, killed mid-way
    fresh = _scratch(db_path, "restoring")
    previous: Path | None = None
    try:
        try:
            tables, version = _copy_in(src, fresh)
        except BaseException:
            _discard(fresh)
            raise
        _fsync(fresh)
        if holder is not None:
            holder.close()
            holder = None
            wal = db_path.with_name(db_path.name + ".wal")
            if wal.exists() and wal.stat().st_size:
                _discard(fresh)
                raise RuntimeError(f"{wal} survived the checkpoint; nothing was restored")
            wal.unlink(missing_ok=True)
            previous = db_path.with_name(
                f"{db_path.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
            )
            _keep_as(db_path, previous)
        os.replace(fresh, db_path)  # one step from the old store to the restored one
        _fsync(db_path)
    finally:
        if holder is not None:
            holder.close()
    return Restored(
        db_path,
        previous,
        tables.get("main.executions", 0),
        tables,
        version,
        round(time.monotonic() - started, 3),
    )


def _keep_as(db_path: Path, previous: Path) -> None:
    """The current store also under `previous`, while it stays at `db_path`: a hard link, so a
    restore killed before the copy is renamed in leaves the store where it was (two renames left
    no store at the path between them, and the next `serve` started an empty one)."""
    try:
        os.link(db_path, previous)
    except OSError:  # a filesystem without hard links: the old two renames
        os.replace(db_path, previous)


def place_backup(made: Path, dest: Path) -> None:
    """Move a finished backup to `dest`, where no partial file ever sits: to another filesystem
    it is copied under a temporary name beside `dest`, fsynced, then renamed (a copy cut short
    by a full disk is removed); an existing `dest` is never overwritten (Conflict)."""
    if _taken(dest):
        raise Conflict(f"{dest} exists; a backup never overwrites a file")
    remove_stale_partials(dest.parent)  # an earlier move killed mid-way: its copy beside DEST
    try:
        os.link(made, dest)  # the same filesystem: atomic, and refuses an existing file
        made.unlink()
        return
    except FileExistsError:
        raise Conflict(f"{dest} exists; a backup never overwrites a file") from None
    except OSError:
        pass  # another filesystem (or no hard links there): copy it
    partial = _scratch(dest, "partial")
    try:
        shutil.copyfile(made, partial)
        _fsync(partial)
        if _taken(dest):
            raise Conflict(f"{dest} appeared while the backup was copied there")
        os.replace(partial, dest)
        _fsync(dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    made.unlink()


def _hold(db_path: Path) -> duckdb.DuckDBPyConnection | None:
    """Open the current store (None if there is none) with its WAL folded in; StoreLocked when a
    process holds it."""
    return open_alone(db_path, "stop the server, then restore") if db_path.exists() else None


def _copy_in(src: Path, target: Path) -> tuple[dict[str, int], int]:
    """Every table of the backup into a fresh file (every block read and checksummed)."""
    with duckdb.connect() as conn:
        prepare_connection(conn)
        try:
            conn.execute(f"ATTACH '{sql_path(src)}' AS src (READ_ONLY)")
            version = _schema_version(conn, "src")
        except duckdb.Error as exc:
            raise InvalidInput(f"{src} is damaged or not a whole store: {exc}", field="src") from exc
        if version > migrations.head():
            raise InvalidInput(
                f"the backup is at schema version {version}, newer than this flowhistory ({migrations.head()})",
                field="src",
            )
        try:  # the store's side: the backup is fine (a folder that cannot be written, a full disk)
            conn.execute(f"ATTACH '{sql_path(target)}' AS dst")
        except duckdb.Error as exc:
            raise InvalidInput(
                f"cannot write the restored store in {target.parent} (the backup is fine): {exc}", field="db"
            ) from exc
        try:
            tables = copy_database(conn, "src", "dst")
            conn.execute("DETACH dst")
            conn.execute("DETACH src")
        except duckdb.Error as exc:
            if is_disk_full(exc):
                raise InvalidInput(
                    f"no room in {target.parent} for the restored store (the backup is fine)", field="db"
                ) from exc
            raise InvalidInput(f"{src} is damaged or not a whole store: {exc}", field="src") from exc
    return tables, version
