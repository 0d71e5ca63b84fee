"""Never a partial file at a final path: temp names in the target folder, free-space checks first.

Shared by the GGUF and ONNX exporters.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from engine.errors import EdgetuneError

PARTIAL_SUFFIX = ".partial"


def ensure_writable_dir(folder: Path) -> Path:
    """Create `folder` if needed and prove we can write in it (clear error otherwise)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".edgetune-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise EdgetuneError(
            f"Cannot write to the export folder '{folder}' ({e.strerror or e}). Choose another with --out DIR "
            f"or fix its permissions."
        ) from None
    return folder


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Fail before writing when the disk holding `folder` has less than `needed` bytes (+5%) free."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed * 1.05:
        raise EdgetuneError(
            f"Not enough disk space for {what} in '{folder}': about {needed / 1e9:.2f} GB needed, "
            f"{free / 1e9:.2f} GB free. Free some space or choose another folder with --out DIR."
        )


def disk_full(e: OSError, folder: Path) -> bool:
    """Whether a failed write ran out of space: ENOSPC, or numpy's errno-less short write
    ("N requested and M written") on a disk that is now (nearly) full."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    short_write = e.errno is None and "requested and" in str(e) and "written" in str(e)
    try:
        return short_write and shutil.disk_usage(folder).free < 64 * 2**20
    except OSError:
        return short_write


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside `final`; rename it to `final` only if the block succeeds."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}{PARTIAL_SUFFIX}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as e:
        full = disk_full(e, final.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise EdgetuneError(f"The disk filled up while writing '{final}' (nothing was left behind). Free some "
                                f"space and export again.") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file via a temp name."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
