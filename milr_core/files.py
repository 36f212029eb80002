"""Files that readers can trust: atomic writes and a lock on an output folder.

No torch here: `milr report` and `milr export` write through this module.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from .errors import MilrError

# mkstemp makes files only their owner can read; results get the mode any new file gets
_UMASK = os.umask(0o022)
os.umask(_UMASK)

LOCK = ".milr.lock"


def cannot_write(path: Path, exc: OSError) -> MilrError:
    return MilrError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.

    A failed write (disk full, no permission) leaves any earlier file as it was and
    is reported as a one-line MilrError.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise


def atomic_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def atomic_image(path: Path, image) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def empty_folder(root: Path) -> None:
    """Remove everything in `root` but the lock this process holds: `--overwrite` starts afresh."""
    for path in root.iterdir():
        if path.name == LOCK:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            raise MilrError(f"cannot clear {path} for --overwrite: {exc.strerror or exc}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class FolderLock:
    """One writer per output folder: `<root>/.milr.lock` holds the writer's PID and host.

    A lock whose process is gone (same host, PID not running) is stale and taken over;
    a lock held on another host cannot be checked and is refused, naming the host.
    Under torchrun only rank 0 takes it, for the whole job.
    """

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK
        self.held = False

    def _holder(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.path.read_text())
            return int(data["pid"]), str(data["host"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return (-1, "")  # unreadable: half-written by a writer killed at that moment, so stale

    def acquire(self) -> None:
        host = socket.gethostname()
        mine = json.dumps({"pid": os.getpid(), "host": host}).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MilrError(f"cannot write to output folder {self.path.parent}: {exc.strerror or exc}") from None
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    continue  # released meanwhile: try again
                pid, where = holder
                if pid == os.getpid() and where == host:
                    self.held = True
                    return
                if where and where != host:
                    raise MilrError(f"{self.path.parent} is in use by process {pid} on host {where}; "
                                    f"wait for it, or remove {self.path} if that process is gone")
                if pid > 0 and _alive(pid):
                    raise MilrError(f"{self.path.parent} is in use by process {pid} (host {host}); "
                                    "wait for it to finish or choose another --out")
                self.path.unlink(missing_ok=True)  # stale: its writer is gone
                continue
            except OSError as exc:
                raise MilrError(f"cannot write to output folder {self.path.parent}: {exc.strerror or exc}") from None
            with os.fdopen(fd, "wb") as f:
                f.write(mine)
            self.held = True
            return
        raise MilrError(f"cannot take the lock {self.path}: other processes keep taking it")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
