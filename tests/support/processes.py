"""The processes of a running ``koppelhub run`` as the tests see them through ``/proc``."""

from __future__ import annotations

from pathlib import Path


def role_children(parent: int) -> list[tuple[str, int]]:
    """The role processes of a multi-process ``run``: (roles, pid), roles as "api,connectors"."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and b"worker" in argv:
            found.append((argv[argv.index(b"--roles") + 1].decode(), int(entry.name)))
    return sorted(found)
