"""The choices and defaults of a run's options, declared once in a module that imports only the standard library:
the command line reads them to build its ``--help`` without loading numba, SciPy or xarray, and the modules that
use them import them from here."""

from __future__ import annotations

import os

#: ``IMPACT_DISABLE_JIT=1``: the kernels run as plain Python (:mod:`impact.accelerate`), read once here so that
#: modules that must not load numba (the streamed summary, the thread count) see the same switch.
JIT_DISABLED = os.environ.get("IMPACT_DISABLE_JIT", "0") not in ("", "0")
#: Draws per random-number block: part of the reproducibility contract (changing it changes every draw).
DRAW_BLOCK = 4096
#: Samplers of the normal scores: Monte Carlo, Latin hypercube, scrambled Sobol.
METHODS = ("mc", "lhs", "sobol")
#: Default draws per chunk: bounds memory (about 0.5 GB at 16 sectors x 12 partners) whatever ``draws`` is.
DEFAULT_CHUNK = 8 * DRAW_BLOCK
#: Draws the rank correlations of a run are read from: the first this many of a larger run. Their sampling error,
#: about 1 / sqrt(n) (0.001), is far below any difference a ranking rests on, and memory stays bounded (every
#: input and the result are held and ranked at once).
RANKED_DRAWS = 1_000_000
#: The sections of ``impact show`` that ``--table`` picks, each one table (``--format csv``).
SHOW_TABLES = ("layers", "retaliation", "pledges", "quotas", "priors", "correlations", "rates", "matrix")
