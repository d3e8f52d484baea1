"""What a process the hub starts runs between fork and exec: the one owner of those steps.

``koppelhub run`` starts the embedded broker (:mod:`hub.embedded`) and its role children
(:mod:`hub.children`) with a ``preexec_fn`` built here. Each is resolved in the parent: the
forked child must not import or look anything up (only ``prctl``, ``getppid``, ``nice`` and a
write to ``/proc`` run in it).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def death_signal(sig: signal.Signals, *, parent: int | None = None) -> Callable[[], None] | None:
    """Die by ``sig`` with the process that started this one (Linux ``prctl(PR_SET_PDEATHSIG)``),
    so a killed ``run``, a SIGKILL included, leaves no child behind; None where there is no
    ``prctl``. With ``parent`` (the starter's pid), exit at once if it is already gone: the
    signal is only sent for a death after the ``prctl``."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, number = 1, int(sig)
    getppid, exit_ = os.getppid, os._exit

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, number)
        if parent is not None and getppid() != parent:
            exit_(1)

    return set_death_signal


def lowered(preexec: Callable[[], None] | None, nice: int) -> Callable[[], None] | None:
    """``preexec``, then ``nice`` steps down in CPU priority: what a work child runs before exec
    (``KOPPELHUB_WORK_NICE``). On a machine the hub fills, the scheduler then gives the API the
    CPU first and the projector and dispatcher what is left: a publish keeps its answer time,
    and the work catches up when the load drops (with two work processes on two cores the
    batch publish halved without it: issue 17).

    Two steps, as Linux shares the CPU twice: between autogroups, then between the processes of
    one. Each child runs in a session of its own (set up before this runs), and with
    ``kernel.sched_autogroup_enabled`` (the default of most distributions) a new session is a new
    autogroup at nice 0 whatever its one process's nice: ``os.nice`` alone changed nothing
    against the API child. So the child also lowers its autogroup (``/proc/self/autogroup``,
    lowering needs no privilege); without autogroups that file is absent and ``os.nice`` does
    it. ``os.nice`` is relative to ``run``'s own priority, which the intake children keep, and
    is inherited by every thread the child starts."""
    if nice <= 0:
        return preexec
    lower, open_, write, close = os.nice, os.open, os.write, os.close
    wronly, step = os.O_WRONLY, str(nice).encode()

    def lowered_() -> None:
        if preexec is not None:
            preexec()
        lower(nice)
        try:
            fd = open_("/proc/self/autogroup", wronly)
        except OSError:
            return  # no autogroups: the process's own nice is what counts
        try:
            write(fd, step)
        except OSError:
            pass  # refused (an older kernel): the process's own nice still holds within its group
        finally:
            close(fd)

    return lowered_
