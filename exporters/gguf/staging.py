"""Publish a GGUF only with its verification: staged under a hidden name, verified there, then renamed.

    with Staging(out_dir) as staging:
        path = staging.target(out_dir / "model-f16.gguf")   # .model-f16.gguf.staged
        write(path)
        report = verify_gguf(path, ref, "f16", name=staging.final(path).name)
        staging.publish([report], path)   # verify.json entry first, then the rename

A file at a final path therefore always has its verify.json entry beside it: an export
killed while it verifies (Ctrl-C, the app's Cancel, an exception) leaves the folder as it
was, because whatever is still staged is removed on the way out. A file that fails
verification is still published, with its failing report (the CLI warns and exits 1).
Without verification (`--no-verify`) `target` is the final path itself: the direct write.
"""

from __future__ import annotations

import os
from pathlib import Path

VERIFY_JSON = "verify.json"
STAGED_SUFFIX = ".staged"


def staged_name(final: Path) -> Path:
    """The hidden name `final` is written and verified under, in the same folder (so the rename is atomic)."""
    final = Path(final)
    return final.with_name(f".{final.name}{STAGED_SUFFIX}")


class Staging:
    """The staged files of one export into `out_dir`; a context manager that removes those never published."""

    def __init__(self, out_dir: Path, enabled: bool = True):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self._finals: dict[Path, Path] = {}  # staged path -> its final path, while still staged

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def target(self, final: Path) -> Path:
        """Where to write `final`: its staged name (verification on) or `final` itself (off)."""
        if not self.enabled:
            return Path(final)
        staged = staged_name(final)
        staged.unlink(missing_ok=True)  # left by a process that was killed outright (SIGKILL)
        self._finals[staged] = Path(final)
        return staged

    def final(self, path: Path) -> Path:
        """The final path of a staged file (any other path is its own final path)."""
        return self._finals.get(Path(path), Path(path))

    def publish(self, reports: list, *paths: Path) -> list:
        """Merge `reports` into verify.json, then rename each staged path to its final name; the final paths.

        Ctrl-C / SIGTERM arriving meanwhile take effect once both steps are done, so an interrupt never
        leaves a file beside another file's entry; only a hard kill (SIGKILL, power loss) between the two
        can leave the new entry while the final path still holds the old file (or none).
        """
        from exporters.gguf.quantize import interrupts_deferred
        from exporters.gguf.verify import save_reports

        finals = []
        with interrupts_deferred("the verified file and its report are in place"):
            if reports:
                save_reports(self.out_dir / VERIFY_JSON, reports)
            for path in paths:
                final = self.final(path)
                if final != Path(path):
                    os.replace(path, final)
                    self._finals.pop(Path(path))
                finals.append(final)
        return finals

    def discard(self, path: Path) -> None:
        """Remove a staged file nobody will publish (an 'auto' candidate that was not chosen)."""
        Path(path).unlink(missing_ok=True)
        self._finals.pop(Path(path), None)

    def cleanup(self) -> None:
        """Remove every file still staged (runs on every exit path, interrupts included)."""
        for staged in list(self._finals):
            staged.unlink(missing_ok=True)
            self._finals.pop(staged)
