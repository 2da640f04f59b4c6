"""The worker's data dir, claimed before the worker waits for a broker or joins its group.

It must be a folder segstream can write, whatever the store: Faust creates its table folders
there with memory:// too, and stream/worker/recovery.py records the cluster there. With
rocksdb://, no other live worker of the same app id may use it: RocksDB locks its files, so a
second worker would retry that lock, force rebalances on the healthy one, then crash. An
exclusive ``flock`` on ``DATA_DIR/APP_ID.lock``, held for the worker's life, says so at once.
The kernel drops the lock when the process ends, however it ends (``kill -9`` included), so a
dead worker never blocks the next. The lock file lies beside the app id's folder, not in it:
recovery may delete and recreate that folder at start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from types import TracebackType

from stream.config import Settings, SettingError


class DataDirLock:
    """An exclusive lock on one app id's lock file; :meth:`release` (or leaving ``with``) removes
    the file and gives the lock up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def release(self) -> None:
        """Remove the file while still holding it: whoever opened it meanwhile sees it is gone
        (:func:`lock`) and locks a new one."""
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def claim(settings: Settings) -> contextlib.AbstractContextManager[object]:
    """The data dir checked writable and, with rocksdb://, locked for this process's app id;
    SettingError naming the folder otherwise. Hold the result for the worker's whole life."""
    if "{" in settings.data_dir or "}" in settings.data_dir:  # Faust formats its datadir with str.format
        raise SettingError("data_dir", f"{settings.data_dir} must not contain '{{' or '}}': Faust expands them")
    for folder in (Path(settings.data_dir), settings.app_data_dir):
        check_writable(folder)
    if settings.store != "rocksdb://":
        return contextlib.nullcontext()
    return lock(Path(settings.data_dir) / f"{settings.app_id}.lock", settings.app_id)


def check_writable(folder: Path) -> None:
    """``folder`` exists (created if need be) and takes a new file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = "it is a file" if folder.is_file() else exc.strerror or str(exc)
        raise SettingError("data_dir", f"{folder} is not a folder segstream can write: {reason}") from None


def lock(path: Path, app_id: str) -> DataDirLock:
    """``path`` locked by this process, with its pid written in it; SettingError naming the
    holder's pid when another process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SettingError("data_dir", f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _pid_in(fd)
            os.close(fd)
            if not isinstance(exc, BlockingIOError):
                raise SettingError("data_dir", f"cannot lock {path}: {exc.strerror or exc}") from None
            raise SettingError(
                "data_dir",
                f"data dir {path.parent} is in use by another segstream worker{holder} of app id {app_id!r}; "
                "give each worker its own SEGSTREAM_DATA_DIR",
            ) from None
        if _still_at(fd, path):
            break
        os.close(fd)  # its holder removed it on the way out: lock the file now at ``path``
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return DataDirLock(path, fd)


def _pid_in(fd: int) -> str:
    """`` (pid N)`` as the holder wrote it in the lock file; empty before it did."""
    written = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f" (pid {written})" if written.isdigit() else ""


def _still_at(fd: int, path: Path) -> bool:
    """Whether the file open at ``fd`` is still the one at ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
