"""This process's peak resident memory, measured so a big parent does not leak into it.

`getrusage().ru_maxrss` is not enough on Linux: the kernel carries the peak-RSS mark of the
parent's address space across fork and exec, so a child started by a 2 GB pytest or app process
reports at least 2 GB however little it used. `/proc/self/status` VmHWM is the high-water mark of
this address space only; ru_maxrss is the fallback where /proc is absent (macOS reports bytes there).
"""

from __future__ import annotations

import sys


def peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
