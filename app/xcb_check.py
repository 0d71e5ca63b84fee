"""Before the window opens on Linux/X11: are the libraries Qt's xcb platform plugin needs installed?

Without them Qt aborts with "Could not load the Qt platform plugin "xcb" ... even though it was
found" and a core dump, which tells a new user nothing. `libxcb-icccm4`, `libxcb-keysyms1` and
(for Qt >= 6.5) `libxcb-cursor0` are not installed by default on common distributions, and the
PySide6 wheel does not ship them. This check loads each one the way the dynamic loader will, and
when some are missing prints the exact install command for the user's distribution:

    $ edgetune
    edgetune cannot open its window: Qt's X11 platform plugin (xcb) needs libraries this system lacks:
      libxcb-icccm.so.4, libxcb-keysyms.so.1
    Install them with:
      sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1
    ...

`EDGETUNE_SKIP_XCB_CHECK=1` skips it (for a system where the libraries live somewhere the loader
only finds through the plugin's own paths).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

# What `ldd PySide6/Qt/plugins/platforms/libqxcb.so` (with libQt6XcbQpa.so.6) lists on PySide6 6.12,
# less the libraries every desktop has (libc, libGL, glib, fontconfig, dbus):
# soname -> package per distribution family.
XCB_LIBS: dict[str, dict[str, str]] = {}


def register_lib(soname: str, apt: str, dnf: str, pacman: str, zypper: str) -> None:
    """Add a library the xcb plugin loads, with the package that provides it in each family."""
    XCB_LIBS[soname] = {"apt": apt, "dnf": dnf, "pacman": pacman, "zypper": zypper}


#            soname                   Debian/Ubuntu          Fedora/RHEL            Arch                   openSUSE
register_lib("libxcb.so.1",            "libxcb1",             "libxcb",              "libxcb",              "libxcb1")
register_lib("libX11-xcb.so.1",        "libx11-xcb1",         "libX11-xcb",          "libx11",              "libX11-xcb1")
register_lib("libxkbcommon.so.0",      "libxkbcommon0",       "libxkbcommon",        "libxkbcommon",        "libxkbcommon0")
register_lib("libxkbcommon-x11.so.0",  "libxkbcommon-x11-0",  "libxkbcommon-x11",    "libxkbcommon-x11",    "libxkbcommon-x11-0")
register_lib("libxcb-cursor.so.0",     "libxcb-cursor0",      "xcb-util-cursor",     "xcb-util-cursor",     "libxcb-cursor0")
register_lib("libxcb-icccm.so.4",      "libxcb-icccm4",       "xcb-util-wm",         "xcb-util-wm",         "libxcb-icccm4")
register_lib("libxcb-keysyms.so.1",    "libxcb-keysyms1",     "xcb-util-keysyms",    "xcb-util-keysyms",    "libxcb-keysyms1")
register_lib("libxcb-image.so.0",      "libxcb-image0",       "xcb-util-image",      "xcb-util-image",      "libxcb-image0")
register_lib("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil", "libxcb-render-util0")
register_lib("libxcb-util.so.1",       "libxcb-util1",        "xcb-util",            "xcb-util",            "libxcb-util1")
register_lib("libxcb-randr.so.0",      "libxcb-randr0",       "libxcb",              "libxcb",              "libxcb-randr0")
register_lib("libxcb-render.so.0",     "libxcb-render0",      "libxcb",              "libxcb",              "libxcb-render0")
register_lib("libxcb-shape.so.0",      "libxcb-shape0",       "libxcb",              "libxcb",              "libxcb-shape0")
register_lib("libxcb-shm.so.0",        "libxcb-shm0",         "libxcb",              "libxcb",              "libxcb-shm0")
register_lib("libxcb-sync.so.1",       "libxcb-sync1",        "libxcb",              "libxcb",              "libxcb-sync1")
register_lib("libxcb-xfixes.so.0",     "libxcb-xfixes0",      "libxcb",              "libxcb",              "libxcb-xfixes0")
register_lib("libxcb-xkb.so.1",        "libxcb-xkb1",         "libxcb",              "libxcb",              "libxcb-xkb1")


@dataclass(frozen=True)
class PackageManager:
    """How one distribution family installs packages."""

    name: str
    install: str  # the command, without sudo and package names
    ids: tuple[str, ...]  # os-release ID / ID_LIKE values of this family


MANAGERS = [
    PackageManager("apt", "apt-get install -y", ("debian", "ubuntu", "linuxmint", "pop", "raspbian")),
    PackageManager("dnf", "dnf install -y", ("fedora", "rhel", "centos", "rocky", "almalinux")),
    PackageManager("pacman", "pacman -S --needed", ("arch", "manjaro", "endeavouros")),
    PackageManager("zypper", "zypper install -y", ("opensuse", "suse", "sles", "opensuse-leap", "opensuse-tumbleweed")),
]


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """KEY=value pairs of os-release (quotes removed); empty when the file is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        try:
            text = Path("/usr/lib/os-release").read_text(encoding="utf-8")
        except OSError:
            return {}
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            pairs[key.strip()] = value.strip().strip("\"'")
    return pairs


def package_manager(os_release: dict[str, str]) -> Optional[PackageManager]:
    """The family's package manager: ID first, then each ID_LIKE entry; None for an unknown distribution."""
    candidates = [os_release.get("ID", "")] + os_release.get("ID_LIKE", "").split()
    for ident in candidates:
        for manager in MANAGERS:
            if ident.lower() in manager.ids:
                return manager
    return None


def loads(soname: str) -> bool:
    """Whether the dynamic loader finds `soname` (dlopen by name: LD_LIBRARY_PATH, ld.so.cache, system dirs)."""
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def missing_libs(finder: Callable[[str], bool] = loads) -> list[str]:
    """The xcb plugin's libraries that `finder` cannot find, in registry order."""
    return [soname for soname in XCB_LIBS if not finder(soname)]


def install_command(missing: list[str], manager: PackageManager, as_root: bool = False) -> str:
    """The one command that installs the packages providing `missing` (each package once)."""
    packages = list(dict.fromkeys(XCB_LIBS[s][manager.name] for s in missing))
    return ("" if as_root else "sudo ") + f"{manager.install} {' '.join(packages)}"


def message(missing: list[str], os_release: dict[str, str], as_root: bool = False) -> str:
    """What the user reads instead of Qt's abort: the missing libraries and how to install them."""
    lines = ["edgetune cannot open its window: Qt's X11 platform plugin (xcb) needs libraries this system lacks:",
             "  " + ", ".join(missing)]
    manager = package_manager(os_release)
    name = os_release.get("PRETTY_NAME") or os_release.get("NAME") or "this distribution"
    if manager is not None:
        lines += [f"Install them with ({name}):", "  " + install_command(missing, manager, as_root)]
    else:
        lines += [f"Install the packages that provide them with {name}'s package manager. For reference:"]
        lines += [f"  {m.name:<7}{install_command(missing, m, as_root)}" for m in MANAGERS]
    lines += ["then start edgetune again. (On a Wayland session QT_QPA_PLATFORM=wayland needs none of them; "
              "the headless `engine` CLI never needs them.)"]
    return "\n".join(lines)


def platform_is_xcb(env: dict[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will try its xcb plugin first: Linux, an X display, and no other platform chosen.

    A Wayland session (WAYLAND_DISPLAY set) with no QT_QPA_PLATFORM lets Qt 6 pick its wayland
    plugin, which needs none of these libraries; no DISPLAY means Qt fails for another reason.
    """
    if not platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen == "xcb" and bool(env.get("DISPLAY"))
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def check_xcb(env: Optional[dict[str, str]] = None, finder: Callable[[str], bool] = loads,
              os_release_path: Path = Path("/etc/os-release"), platform: str = sys.platform) -> Optional[str]:
    """The message to print when Qt's xcb plugin would fail to load; None when all is well or not X11."""
    env = dict(os.environ if env is None else env)
    if env.get("EDGETUNE_SKIP_XCB_CHECK") == "1" or not platform_is_xcb(env, platform):
        return None
    missing = missing_libs(finder)
    if not missing:
        return None
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return message(missing, read_os_release(os_release_path), as_root)
