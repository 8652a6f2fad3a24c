"""The one Linux call the process tree needs that Python does not wrap."""
import ctypes
import signal

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies, so no orphan is
    left behind even after a kill -9 of the supervisor."""
    _libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
