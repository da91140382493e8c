"""Put a prepared folder where another one is, in one step, so a reader listing the path sees
the old folder or the new one, never both and never neither.

`os.rename` cannot do it (it refuses to replace a folder that is not empty); Linux's
`renameat2(RENAME_EXCHANGE)` swaps two paths atomically, any kind of entry (a folder with a
legacy symlink too). Python's `os` does not expose it, so it is called through ctypes (glibc
2.28+). Where it is missing (another OS, a filesystem that refuses it, e.g. NFS) the swap falls
back to two renames, with a moment in between where the path is missing (docs/exports.md).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path

AT_FDCWD = -100
RENAME_EXCHANGE = 1 << 1
# the kernel or the filesystem does not support the exchange: fall back
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap the entries at `a` and `b` atomically (both must exist); False when this system
    cannot, and nothing was changed."""
    if _renameat2 is None:
        return False
    if _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def swap_in(prepared: Path, dest: Path) -> Path | None:
    """Make folder `prepared` appear at `dest` (same filesystem) and answer where the entry that
    was at `dest` now is, for the caller to delete (None if there was none)."""
    if not os.path.lexists(dest):
        os.rename(prepared, dest)  # a new name appears whole
        return None
    if exchange(prepared, dest):
        return prepared
    old = prepared.with_name(prepared.name + ".old")
    os.rename(dest, old)  # from here to the next rename, `dest` is missing
    os.rename(prepared, dest)
    return old
