"""What one server accepts: request caps and the bounded wait for a generation slot.

Generation is CPU/GPU bound, so running many at once only splits the same throughput and
memory; `parallel` generations run, up to `queue` more wait, and the next one gets 429 at
once instead of a timeout minutes later (what a client can retry against).
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from engine.serve.api_errors import ApiError


@dataclass
class ServeLimits:
    max_body_bytes: int = 1 << 20  # 1 MiB: a long conversation is ~100 KB of text
    max_tokens: int = 2048  # the largest max_tokens a request may ask for (and the default when it asks none)
    max_messages: int = 512
    parallel: int = 1  # generations at once; a model itself always serves one request at a time
    queue: int = 16  # requests allowed to wait for a slot; beyond that: 429
    max_images: int = 8  # per request (all messages): each costs the processor and up to ~1k prompt tokens
    local_files: bool = True  # image parts may name files on this machine (off only on a non-loopback bind)

    def check(self) -> "ServeLimits":
        """Refuse nonsense settings with the flag to fix."""
        from engine.errors import EdgetuneError

        for name, low in (("max_body_bytes", 1024), ("max_tokens", 1), ("max_messages", 1), ("parallel", 1),
                          ("queue", 0), ("max_images", 0)):
            if getattr(self, name) < low:
                raise EdgetuneError(f"--{name.replace('_', '-')} must be at least {low}, not {getattr(self, name)}.")
        return self


class Ticket:
    """One admitted request's place: waiting, then running, then released (exactly once)."""

    def __init__(self, gate: "AdmissionGate"):
        self.gate, self.running, self.done = gate, False, False

    async def wait_turn(self) -> None:
        """Wait for a generation slot (leaving the queue)."""
        await self.gate.sem.acquire()
        self.gate.waiting -= 1
        self.running = True

    def release_with(self, owner) -> None:
        """Also release when `owner` is garbage-collected: a streamed body whose client left before
        its first byte is never iterated, so its own `finally` never runs."""
        weakref.finalize(owner, self.release)

    def release(self) -> None:
        """Give back the slot or the place in the queue; later calls do nothing."""
        if self.done:
            return
        self.done = True
        if self.running:
            self.gate.sem.release()
        else:
            self.gate.waiting -= 1


class AdmissionGate:
    """`parallel` running, at most `queue` waiting; `reserve()` raises 429 beyond that."""

    def __init__(self, parallel: int, queue: int):
        self.parallel, self.queue = parallel, queue
        self.sem = asyncio.Semaphore(parallel)
        self.waiting = 0

    def reserve(self) -> Ticket:
        """Take a place in line now (synchronously, so the answer can still be a 429 status)."""
        if self.sem.locked() and self.waiting >= self.queue:
            raise ApiError(429, f"The server is busy: {self.parallel} generation(s) running and {self.waiting} "
                                f"waiting (the queue holds {self.queue}). Retry shortly.", code="server_busy")
        self.waiting += 1
        return Ticket(self)
