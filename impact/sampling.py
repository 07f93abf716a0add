"""Reproducible designs for the uncertain inputs.

Every sampled scalar (a *column*, e.g. ``sigma[steel]`` or ``fx[japan]``) gets standard-normal scores draw by
draw. Draws are generated in fixed blocks of :data:`DRAW_BLOCK`, and the random stream of a block is keyed by
``(seed, column name, block index)``, never by chunk, thread, shard or worker: draw ``d`` is the same number
whatever the chunk size. With ``mc`` and ``lhs`` a column also keeps its stream when other columns are added or
removed, so separate runs with one seed share the draws of the columns they have in common; a Sobol design is one
sequence over all columns, so its draws depend on the set of columns. Scores are mapped to values by each input's
inverse CDF (:mod:`impact.distributions`), after an optional Gaussian-copula correlation, so every family works with
every design, and a scenario and its counterfactual see the same draws (common random numbers).

Designs (``method``):

* ``mc``: plain Monte Carlo, an independent uniform per draw and column.
* ``lhs``: Latin hypercube within each block: in every block of ``DRAW_BLOCK`` draws each column has exactly one
  draw in each of ``DRAW_BLOCK`` equal-probability strata (independent permutations per column).
* ``sobol``: one scrambled Sobol sequence (``scipy.stats.qmc.Sobol``) over all columns, in name order; block ``b`` is
  points ``b * DRAW_BLOCK ...``, a balanced segment of the sequence. Use draw counts that are powers of 2.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
from scipy.special import ndtri

from impact.defaults import DRAW_BLOCK, METHODS
from impact.distributions import Z_LIMIT
from impact.kernels.pcg64 import PCG64_MULTIPLIER
from impact.threads import thread_map

_SOBOL_STREAM = 0x50B01


def column_key(name: str) -> int:
    """A stable 64-bit key for a column's random stream."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def _block_generator(seed: int, column: str, block: int) -> np.random.Generator:
    """The generator of one block's stream, as NumPy builds it (the definition :func:`block_states` follows)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(column_key(column), block))))


# NumPy's SeedSequence (numpy/random/bit_generator.pyx): its hash constants and pool size.
_POOL_SIZE = 4
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1


def _uint32_words(n: int) -> list[int]:
    """An integer's 32-bit words, lowest first (one word 0 for 0), as SeedSequence splits its entropy."""
    words = [n & _MASK32]
    n >>= 32
    while n:
        words.append(n & _MASK32)
        n >>= 32
    return words


def block_states(seed: int, keys, blocks) -> list[dict]:
    """PCG64 states of the streams ``SeedSequence(seed, spawn_key=(key, block))`` for pairs of column keys and
    blocks, equal to ``PCG64(SeedSequence(seed, spawn_key=(key, block))).state``.

    A chunk starts hundreds of block streams; NumPy's SeedSequence hashes each one's entropy in a loop that holds
    the GIL (about 28 us a stream). The hash is the same sequence of 32-bit operations for every stream whose
    entropy has as many words (its constants depend only on the position in the entropy), so here it runs over all
    the pairs at once as arrays. ``tests/test_reproducibility.py`` checks the states against NumPy's."""
    keys, blocks = (np.asarray(a, dtype=np.uint64).reshape(-1) for a in (keys, blocks))
    if blocks.size and int(blocks.max()) > _MASK32:
        raise ValueError("block numbers must be below 2**32")
    states = [None] * keys.size
    # A key below 2**32 is one word of entropy, a larger one two; a block number (below 2**32) is one.
    long_key = keys > np.uint64(_MASK32)
    for long in (False, True):
        where = np.flatnonzero(long_key == long)
        if where.size:
            for i, state in zip(where, _seeded_states(seed, keys[where], blocks[where], long)):
                states[i] = state
    return states


def _seeded_states(seed: int, keys: np.ndarray, blocks: np.ndarray, long_key: bool) -> list[dict]:
    """:func:`block_states` of pairs whose keys are all two words (``long_key``) or all one."""
    run = _uint32_words(seed)
    run += [0] * (_POOL_SIZE - len(run))  # SeedSequence pads the run entropy to the pool when it has a spawn key
    mask = np.uint64(_MASK32)
    shift = np.uint64(16)
    entropy = [np.full(keys.shape, w, dtype=np.uint64) for w in run] + [keys & mask]
    if long_key:
        entropy.append(keys >> np.uint64(32))
    entropy.append(blocks)
    hash_const = _INIT_A

    def hashmix(value):
        nonlocal hash_const
        value = value ^ np.uint64(hash_const)
        hash_const = (hash_const * _MULT_A) & _MASK32
        value = (value * np.uint64(hash_const)) & mask
        return value ^ (value >> shift)

    def mix(x, y):
        result = (np.uint64(_MIX_MULT_L) * x - np.uint64(_MIX_MULT_R) * y) & mask
        return result ^ (result >> shift)

    pool = [hashmix(entropy[i]) for i in range(_POOL_SIZE)]
    for source in range(_POOL_SIZE):
        for target in range(_POOL_SIZE):
            if source != target:
                pool[target] = mix(pool[target], hashmix(pool[source]))
    for word in entropy[_POOL_SIZE:]:
        for target in range(_POOL_SIZE):
            pool[target] = mix(pool[target], hashmix(word))
    # generate_state(4, np.uint64): eight 32-bit words from the pool, paired little-endian.
    hash_const = _INIT_B
    words = []
    for i in range(8):
        value = pool[i % _POOL_SIZE] ^ np.uint64(hash_const)
        hash_const = (hash_const * _MULT_B) & _MASK32
        value = (value * np.uint64(hash_const)) & mask
        words.append(value ^ (value >> shift))
    seeds = [(w0 | (w1 << np.uint64(32))).tolist() for w0, w1 in zip(words[0::2], words[1::2])]
    states = []
    for seed_high, seed_low, inc_high, inc_low in zip(*seeds):
        # pcg64_set_seed: pcg_setseq_128_srandom_r on (initstate, initseq), high word first.
        increment = ((((inc_high << 64) | inc_low) << 1) | 1) & _MASK128
        state = (increment + ((seed_high << 64) | seed_low)) & _MASK128
        state = (state * PCG64_MULTIPLIER + increment) & _MASK128
        states.append({"bit_generator": "PCG64", "state": {"state": state, "inc": increment},
                       "has_uint32": 0, "uinteger": 0})
    return states


class Design:
    """Independent standard-normal scores for named columns, for any range of draws.

    Parameters
    ----------
    columns : list of str
        Names of the sampled inputs (order does not matter; Sobol dimensions follow sorted names).
    method : {"mc", "lhs", "sobol"}, default: "mc"
    seed : int
        Root seed (a non-negative integer).
    """

    def __init__(self, columns, method: str = "mc", seed: int = 0):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if int(seed) < 0:
            raise ValueError("seed must be a non-negative integer")
        self.columns = sorted(set(columns))
        self.method = method
        self.seed = int(seed)

    def uniforms(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Design points on (0, 1) for draws ``start`` to ``stop - 1``, by column."""
        if not 0 <= start <= stop:
            raise ValueError(f"bad draw range [{start}, {stop})")
        first, last = start // DRAW_BLOCK, -(-stop // DRAW_BLOCK)
        offset = start - first * DRAW_BLOCK
        n_block_draws = (last - first) * DRAW_BLOCK
        if not self.columns or stop == start:
            return {c: np.empty(stop - start) for c in self.columns}
        if self.method == "sobol":
            from scipy.stats import qmc  # on demand: scipy.stats takes most of a second to import

            engine = qmc.Sobol(len(self.columns), scramble=True,
                               rng=np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_SOBOL_STREAM,))))
            if first:
                engine.fast_forward(first * DRAW_BLOCK)
            with warnings.catch_warnings():
                # Blocks are 2^12 points at multiples of 2^12, each a balanced segment; the run warns about totals.
                warnings.filterwarnings("ignore", message="The balance properties of Sobol")
                points = engine.random(n_block_draws)[offset: offset + stop - start]
            return {c: np.ascontiguousarray(points[:, i]) for i, c in enumerate(self.columns)}
        states = self._stream_states(start, stop)
        return dict(zip(self.columns, thread_map(
            lambda column: self._column_uniforms(states[column], start, stop), self.columns)))

    def _stream_states(self, start: int, stop: int) -> dict[str, list[dict]]:
        """The PCG64 states that start the blocks of draws ``start`` to ``stop - 1``, by column."""
        first, last = start // DRAW_BLOCK, -(-stop // DRAW_BLOCK)
        blocks = last - first
        keys = np.repeat(np.array([column_key(c) for c in self.columns], dtype=np.uint64), blocks)
        states = block_states(self.seed, keys, np.tile(np.arange(first, last), len(self.columns)))
        return {c: states[i * blocks: (i + 1) * blocks] for i, c in enumerate(self.columns)}

    def _column_uniforms(self, states: list[dict], start: int, stop: int) -> np.ndarray:
        """One column's ``mc`` or ``lhs`` points for draws ``start`` to ``stop - 1``, from the states that start
        its keyed block streams (:meth:`_stream_states`)."""
        first = start // DRAW_BLOCK
        out = np.empty(len(states) * DRAW_BLOCK)
        bit_generator = np.random.PCG64(0)
        rng = np.random.Generator(bit_generator)
        for k, state in enumerate(states):
            bit_generator.state = state
            piece = out[k * DRAW_BLOCK: (k + 1) * DRAW_BLOCK]
            if self.method == "mc":
                rng.random(DRAW_BLOCK, out=piece)
            else:
                piece[:] = (rng.permutation(DRAW_BLOCK) + rng.random(DRAW_BLOCK)) / DRAW_BLOCK
        return out[start - first * DRAW_BLOCK: stop - first * DRAW_BLOCK]

    def normal_scores(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Independent standard-normal scores for draws ``start`` to ``stop - 1`` (clipped to +-Z_LIMIT), on the
        kernels' threads. ``mc`` designs compute them in one compiled pass (:mod:`impact.kernels.scores_numba`),
        with the same bits as this NumPy path (:meth:`numpy_normal_scores`)."""
        from impact import accelerate  # on demand: it loads numba

        if self.method == "mc" and self.columns and 0 <= start < stop and not accelerate.DISABLE_JIT:
            from impact.kernels.scores_numba import block_normal_scores

            streams = _stream_words(self._stream_states(start, stop))
            scores = np.empty((len(self.columns), stop - start))
            block_normal_scores(streams, DRAW_BLOCK, start % DRAW_BLOCK, Z_LIMIT, scores)
            return dict(zip(self.columns, scores))
        return self.numpy_normal_scores(start, stop)

    def numpy_normal_scores(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """:meth:`normal_scores` from NumPy's generators and ``scipy.special.ndtri`` (the reference of the compiled
        pass; the path of ``lhs`` and ``sobol`` designs)."""
        if self.method != "sobol" and self.columns and 0 <= start < stop:
            # The uniforms first, one column after another: resetting a generator block by block holds the GIL, and
            # on the threads it stalled their ndtri, which does not (x1.1-1.3 on 100 columns of 32,768 draws).
            states = self._stream_states(start, stop)
            uniforms = {column: self._column_uniforms(states[column], start, stop) for column in self.columns}
        else:
            uniforms = self.uniforms(start, stop)
        return dict(zip(self.columns, thread_map(lambda column: _clipped_scores(uniforms[column]), self.columns)))


def _stream_words(states: dict[str, list[dict]]) -> np.ndarray:
    """PCG64 states (:meth:`Design._stream_states`) as the words :func:`impact.kernels.scores_numba.pcg64_doubles`
    takes: (columns, blocks, 4) of state high, state low, increment high, increment low."""
    mask = (1 << 64) - 1
    return np.array([[[s["state"]["state"] >> 64, s["state"]["state"] & mask, s["state"]["inc"] >> 64,
                       s["state"]["inc"] & mask] for s in column] for column in states.values()], dtype=np.uint64)


def _clipped_scores(uniforms: np.ndarray) -> np.ndarray:
    """Normal scores of design points, clipped to +-Z_LIMIT, computed in the points' own array."""
    scores = ndtri(uniforms, out=uniforms)
    return np.clip(scores, -Z_LIMIT, Z_LIMIT, out=scores)


#: A Schur-complement pivot at or below this (in units of the input's unit variance) marks an input as a linear
#: combination of the inputs before it. Far above rounding noise (about n * 1e-16), far below any correlation a
#: scenario means: a correlation of 1 - 5e-11 or closer counts as perfect.
SINGULAR_PIVOT = 1e-10


def correlation_factor(matrix) -> np.ndarray:
    """The canonical lower-triangular factor ``L`` with ``L @ L.T == matrix`` of a correlation matrix.

    A Cholesky factorization in input order, without pivoting, that also takes positive *semi*-definite
    (singular) matrices: when the remaining variance of input ``j`` given the inputs before it is at or below
    :data:`SINGULAR_PIVOT`, input ``j`` is a linear combination of them and column ``j`` is zero. So input 0
    keeps its own scores, and a perfectly correlated input copies the scores of the one it follows.

    The factor is computed with scalar IEEE operations only (products, :func:`math.fsum` of them, one division
    and one square root per entry, each correctly rounded), never with BLAS or LAPACK, whose results depend on
    the kernel picked for the CPU (and, for a singular matrix, whose eigenvectors are not even unique). The same
    matrix gives the same factor, bit for bit, on every machine. Raises ``ValueError`` if the matrix is not
    positive semi-definite (a pivot below ``-SINGULAR_PIVOT``).
    """
    rows = [[float(value) for value in row] for row in np.asarray(matrix, dtype=np.float64)]
    n = len(rows)
    factor = [[0.0] * n for _ in range(n)]
    for j in range(n):
        pivot = rows[j][j] - math.fsum(factor[j][k] * factor[j][k] for k in range(j))
        if pivot < -SINGULAR_PIVOT:
            raise ValueError(f"not positive semi-definite: input {j} has remaining variance {pivot:.3g} given "
                             "the inputs before it")
        if pivot <= SINGULAR_PIVOT:
            continue  # input j is a combination of inputs 0..j-1: its column stays zero
        diagonal = math.sqrt(pivot)
        factor[j][j] = diagonal
        for i in range(j + 1, n):
            factor[i][j] = (rows[i][j] - math.fsum(factor[i][k] * factor[j][k] for k in range(j))) / diagonal
    return np.array(factor, dtype=np.float64).reshape(n, n)


def correlate(scores: dict[str, np.ndarray], correlations) -> dict[str, np.ndarray]:
    """Apply Gaussian-copula correlation blocks ``[(names, matrix), ...]`` to independent scores.

    The factor acts draw by draw, so correlated scores too are the same whatever the chunking. Each result is
    clipped to +-Z_LIMIT again, like the independent scores.
    """
    out = dict(scores)
    for names, matrix in correlations:
        factor = correlation_factor(np.asarray(matrix, dtype=float))
        for i, name in enumerate(names):
            # An explicit sum in fixed order: a BLAS product may pick kernels by array size and change the bits.
            mixed = np.zeros_like(scores[name])
            for k in range(i + 1):
                mixed += factor[i, k] * scores[names[k]]
            out[name] = np.clip(mixed, -Z_LIMIT, Z_LIMIT)
    return out
