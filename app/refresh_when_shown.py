"""Pages that recompute (in a worker) after an input changes, but only while someone looks.

A change that arrives while the page is hidden marks it stale; the page refreshes when it is
next shown. The page provides `self.debounce`, a single-shot QTimer wired to its refresh.
"""

from __future__ import annotations


class RefreshWhenShown:
    """Mixin for a QWidget page; list it before QWidget in the bases."""

    _stale = False

    def request_refresh(self) -> None:
        if self.isVisible():
            self.debounce.start()
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.debounce.start()
