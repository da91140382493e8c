"""Typed errors; analytics knows no status codes, api/errors.py maps these to them."""

from __future__ import annotations


class FlowHistoryError(Exception):
    """Base of every error analytics raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(FlowHistoryError):
    pass


class AccessDenied(FlowHistoryError):
    pass


class NotAuthenticated(FlowHistoryError):
    pass


class InvalidInput(FlowHistoryError, ValueError):
    """Input that is well-formed but means something impossible (wrong flow id, bad range)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class NotAStore(InvalidInput):
    """The file given as the store is some other DuckDB database: it is left as it is."""


class Refused(InvalidInput):
    """Input that was read and handed to an engine that refused it (the SQL console's DuckDB):
    `detail` is the engine's reason. The API answers 400, apart from InvalidInput's 422."""


class Conflict(FlowHistoryError):
    pass


class TooManyRequests(FlowHistoryError):
    """Asked more often than the action may run (429); `retry_after` in whole seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreClosed(FlowHistoryError, RuntimeError):
    pass


class StoreLost(StoreClosed):
    """The store's file was removed, replaced or truncated under the running server: no write
    is taken any more (answered 503); an operator restores the rescued copy and restarts."""


class StoreUnwritable(StoreClosed):
    """The store's folder cannot be written (read-only, no permission): writes are refused
    (503) while reads go on, and resume once it can be written."""


class StoreUnopenable(FlowHistoryError, RuntimeError):
    """The path given as the store cannot be opened as one (a folder, a file that is not a
    DuckDB database, a place no file can be made): the detail names the path and the reason."""


class StoreLocked(FlowHistoryError, RuntimeError):
    """Another process holds the DuckDB file; DuckDB allows one writer process per file."""


class UpstreamFailed(FlowHistoryError):
    """A system flowhistory writes to (the export target) failed; the request itself was fine."""


class StorageFull(FlowHistoryError, RuntimeError):
    """The store's disk is full (or the file hit its size limit): the write was not stored.

    The detail never names paths or quotes DuckDB: it is shown to any caller."""


class FolderUnwritable(StorageFull):
    """A folder beside the store (the backup folder) cannot be made or written (a read-only or
    pseudo file system, no permission): an operator's setting to fix, answered 507 like a full
    one, the detail naming the setting, never the path (that is logged)."""


class FolderFull(StorageFull):
    """A folder beside the store (the backup folder, the retention archive) has no room: that
    job failed and left nothing behind, the store and its own disk-full mode are untouched.

    Answered 507 like StorageFull; the detail names the folder by its role, never its path."""


class NotReady(StoreClosed):
    """The store cannot do its work now (closed, schema behind, writer stopped): answered 503."""


class ManagedByOpenWebUI(Conflict):
    """In Open WebUI mode users, groups and flows are Open WebUI's: change them there (409)."""

    def __init__(self, what: str = "this") -> None:
        super().__init__(f"{what} is managed by Open WebUI: change it there")
