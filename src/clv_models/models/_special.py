"""Gauss's hypergeometric function on many arguments at once, split across the machine's cores.

₂F₁ is most of the cost of BG/NBD expected purchases and CLV (~200 ns a call, 12 calls per
distinct (x, T) pair for a 12-month CLV: 7.9 of 10.1 ms on the 10k benchmark table). scipy's
ufunc releases the GIL, so interleaved slices evaluated in threads run in parallel; each element
is computed by the same code as in one call, so the result is identical bit for bit whatever the
number of threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import hyp2f1

# Below this many evaluations per thread, starting threads (~50 µs each) costs more than it saves.
MIN_EVALUATIONS_PER_THREAD = 4_000


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def hyp2f1_threaded(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """₂F₁(a, b; c; z) elementwise (scipy's ``hyp2f1``; arguments broadcast against each other),
    in up to ``usable_cores()`` threads, each taking every k-th position of the last axis.
    Overflow gives ±inf without a warning, as the callers expect (they multiply by a factor that
    vanishes there)."""
    a, b, c, z = (np.asarray(v, dtype=float) for v in (a, b, c, z))
    shape = np.broadcast_shapes(a.shape, b.shape, c.shape, z.shape)
    columns = shape[-1] if shape else 1
    threads = min(usable_cores(), int(np.prod(shape, dtype=np.int64)) // MIN_EVALUATIONS_PER_THREAD, columns)
    out = np.empty(shape)

    def evaluate(start: int, step: int) -> None:
        # Views, not copies: a length-1 (broadcast) last axis is taken whole.
        parts = [v[..., start::step] if v.ndim and v.shape[-1] == columns else v for v in (a, b, c, z)]
        # errstate is per thread (a context variable): set it where the evaluation runs.
        with np.errstate(over="ignore", invalid="ignore"):
            hyp2f1(*parts, out=out[..., start::step] if shape else out)

    if threads <= 1:
        evaluate(0, 1)
        return out if shape else out[()]
    # Interleaved positions rather than blocks: the cost of an evaluation grows with z, which
    # neighbouring positions share, so contiguous blocks would leave one thread waiting.
    with ThreadPoolExecutor(max_workers=threads - 1) as pool:
        pending = [pool.submit(evaluate, start, threads) for start in range(1, threads)]
        evaluate(0, threads)  # this thread takes a share instead of waiting idle
        for future in pending:
            future.result()
    return out
