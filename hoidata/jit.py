"""What hoidata's compiled kernels (numba) share: a lighter first call.

The first compiled call in a process, even one loaded from numba's cache, makes numba import all
its implementation registries, and one of them imports ``scipy.linalg`` (0.2 s) only to learn
whether ``np.dot`` may call BLAS. No hoidata kernel does linear algebra, so that first call runs
with ``scipy.linalg.cython_blas`` hidden: numba then writes the few inner products that would have
used BLAS (``np.correlate``, ``np.convolve``) as plain loops, and everything that needs scipy later
(``np.linalg`` in compiled code) still imports it when compiled, as it always does.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_BLAS = "scipy.linalg.cython_blas"
_REGISTRIES = "numba.np.arraymath"  # imported with the registries, at the first compiled call
_lock = threading.RLock()


@contextmanager
def first_call_without_scipy() -> Iterator[None]:
    """Around a call into compiled code: the first one in the process does not import scipy.linalg.
    A no-op once the registries are loaded, or when scipy.linalg is loaded already."""
    if _REGISTRIES in sys.modules or _BLAS in sys.modules:
        yield
        return
    with _lock:
        hidden = _BLAS not in sys.modules
        if hidden:
            sys.modules[_BLAS] = None  # type: ignore[assignment]  # import stops here: no BLAS
        try:
            yield
        finally:
            if hidden and sys.modules.get(_BLAS, 0) is None:
                del sys.modules[_BLAS]
