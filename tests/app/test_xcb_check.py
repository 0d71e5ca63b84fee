"""The xcb pre-flight check: which libraries are missing, and the one install command per distribution."""

from __future__ import annotations

import pytest

from app import xcb_check
from app.xcb_check import check_xcb, install_command, message, package_manager, platform_is_xcb, read_os_release

OS_RELEASES = {
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nID=debian\n',
    "ubuntu": 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\n',
    "fedora": 'NAME="Fedora Linux"\nID=fedora\n',
    "rocky": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n',
    "arch": 'NAME="Arch Linux"\nID=arch\n',
    "manjaro": 'NAME="Manjaro Linux"\nID=manjaro\nID_LIKE=arch\n',
    "tumbleweed": 'NAME="openSUSE Tumbleweed"\nID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n',
}
X11 = {"DISPLAY": ":0"}
ICCCM_KEYSYMS = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
EXPECTED = {
    "debian": "apt-get install -y libxcb-icccm4 libxcb-keysyms1",
    "ubuntu": "apt-get install -y libxcb-icccm4 libxcb-keysyms1",
    "fedora": "dnf install -y xcb-util-wm xcb-util-keysyms",
    "rocky": "dnf install -y xcb-util-wm xcb-util-keysyms",
    "arch": "pacman -S --needed xcb-util-wm xcb-util-keysyms",
    "manjaro": "pacman -S --needed xcb-util-wm xcb-util-keysyms",
    "tumbleweed": "zypper install -y libxcb-icccm4 libxcb-keysyms1",
}


def fake_finder(missing: set[str]):
    return lambda soname: soname not in missing


@pytest.mark.parametrize("distro", sorted(OS_RELEASES))
def test_message_names_the_missing_libraries_and_the_install_command(tmp_path, distro):
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES[distro])
    text = check_xcb(X11, fake_finder(ICCCM_KEYSYMS), os_release, platform="linux")
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in text
    assert EXPECTED[distro] in text.splitlines()[3]
    assert "Could not load" not in text


def test_sudo_unless_root():
    manager = package_manager({"ID": "debian"})
    assert install_command(["libxcb-cursor.so.0"], manager) == "sudo apt-get install -y libxcb-cursor0"
    assert install_command(["libxcb-cursor.so.0"], manager, as_root=True) == "apt-get install -y libxcb-cursor0"


def test_one_package_named_once_when_it_provides_several_libraries():
    manager = package_manager({"ID": "fedora"})
    cmd = install_command(["libxcb.so.1", "libxcb-randr.so.0", "libxcb-shm.so.0", "libxcb-cursor.so.0"], manager, True)
    assert cmd == "dnf install -y libxcb xcb-util-cursor"


def test_unknown_distribution_lists_every_family():
    text = message(["libxcb-cursor.so.0"], {"NAME": "Gentoo", "ID": "gentoo"}, as_root=False)
    assert "Gentoo's package manager" in text
    for cmd in ("sudo apt-get install -y libxcb-cursor0", "sudo dnf install -y xcb-util-cursor",
                "sudo pacman -S --needed xcb-util-cursor", "sudo zypper install -y libxcb-cursor0"):
        assert cmd in text


def test_nothing_missing_means_no_message(tmp_path):
    assert check_xcb(X11, fake_finder(set()), tmp_path / "none", platform="linux") is None


@pytest.mark.parametrize("env, platform, expected", [
    ({"DISPLAY": ":0"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),  # Qt 6 picks wayland
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({}, "linux", False),  # no X display: Qt fails for another reason
    ({"DISPLAY": ":0"}, "darwin", False),
    ({"DISPLAY": ":0"}, "win32", False),
])
def test_only_checked_when_qt_will_use_xcb(env, platform, expected):
    assert platform_is_xcb(env, platform) is expected


def test_skip_switch(tmp_path):
    env = {**X11, "EDGETUNE_SKIP_XCB_CHECK": "1"}
    assert check_xcb(env, fake_finder(ICCCM_KEYSYMS), tmp_path / "none", platform="linux") is None


def test_os_release_parsing(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('# comment\nID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID=15.6\n')
    assert read_os_release(path)["ID"] == "opensuse-leap"
    assert package_manager(read_os_release(path)).name == "zypper"


def test_the_real_finder_finds_libc_and_not_a_made_up_library():
    assert xcb_check.loads("libc.so.6")
    assert not xcb_check.loads("libxcb-does-not-exist.so.9")


def test_edgetune_exits_1_with_the_message_before_qt_starts(monkeypatch, capsys, tmp_path):
    """app.main prints the check's message and returns 1, without creating a QApplication."""
    import app.main

    monkeypatch.setattr(xcb_check, "check_xcb", lambda: "edgetune cannot open its window: ... apt-get install -y libxcb-icccm4")
    assert app.main.main([]) == 1
    assert "apt-get install -y libxcb-icccm4" in capsys.readouterr().err
