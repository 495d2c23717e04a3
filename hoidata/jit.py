"""What hoidata's compiled kernels (numba) share: a lighter first call.

The first compiled call in a process, even one loaded from numba's cache, makes numba import all
its implementation registries, and one of them imports ``scipy.linalg`` (0.2 s) only to learn
whether ``np.dot`` may call BLAS. No hoidata kernel does linear algebra, so :func:`start_numba`
loads the registries with that probe answering "no BLAS": numba then writes the few inner products
that would have used it (``np.correlate``, ``np.convolve``) as plain loops, and ``np.linalg`` in
compiled code still imports scipy when compiled, as it always does. Only numba's probe is told
otherwise; no import anywhere else is touched.
"""

from __future__ import annotations

import sys
import threading

import numba.np.linalg
from numba import njit

_REGISTRIES = "numba.np.arraymath"  # imported with the registries, at the first compiled call
_lock = threading.Lock()


def start_numba() -> None:
    """Load numba's registries without scipy.linalg, once per process; call before a kernel."""
    if _REGISTRIES in sys.modules:
        return
    with _lock:
        if _REGISTRIES in sys.modules:
            return
        probe = getattr(numba.np.linalg, "ensure_blas", None)
        if probe is not None:
            numba.np.linalg.ensure_blas = _no_blas  # the registries bind it as they load
        try:
            _first_call()
        finally:
            if probe is not None:
                numba.np.linalg.ensure_blas = probe
                registries = sys.modules.get(_REGISTRIES)
                if getattr(registries, "ensure_blas", None) is _no_blas:
                    registries.ensure_blas = probe  # type: ignore[union-attr]


def _no_blas() -> None:
    raise ImportError("hoidata's compiled kernels use no BLAS")


@njit(cache=True)
def _first_call() -> int:
    return 0
