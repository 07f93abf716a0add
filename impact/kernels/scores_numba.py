"""Compiled normal scores of ``mc`` designs: each block's PCG64 uniforms and their inverse normal CDF in one pass.

The NumPy reference is :meth:`impact.sampling.Design.numpy_normal_scores`: ``Generator.random`` on NumPy's PCG64,
``scipy.special.ndtri``, ``np.clip`` (:func:`impact.sampling._clipped_scores`). This pass gives the
same bits, for every draw, and on the kernels' threads; the reference resets a generator for each block with the
GIL held (a quarter of the sampling's time at one thread, and none of it shared by a second).

* PCG64 (NumPy's ``PCG64``, O'Neill's XSL-RR 128/64): the 128-bit state advances as ``state * MULTIPLIER +
  increment`` and each output is the high and low words of the new state xor-ed, rotated right by the state's top
  six bits. A double is the output's top 53 bits times 2**-53 (NumPy's ``next_double``). The 128-bit product is
  taken in 64-bit words, exactly.
* The inverse normal CDF is Cephes' ``ndtri`` (S. L. Moshier, 1989), which ``scipy.special.ndtri`` evaluates: the
  same rational approximations, with their coefficients, evaluated in the same order of operations (no fused
  multiply-adds: numba contracts nothing without ``fastmath``), with the C library's ``log`` and ``sqrt``. The
  central region (``exp(-2) < u <= 1 - exp(-2)``, about three draws in four) is computed for every value of a block
  in a loop without branches, which the compiler vectorizes; the tails are then gathered and computed in passes of
  their own (:func:`clipped_ndtri`).

``tests/test_sampling_kernels.py`` checks both against NumPy and SciPy, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from impact.accelerate import jit, prange
from impact.kernels.pcg64 import PCG64_MULTIPLIER

# PCG64's multiplier in 64-bit words.
_MULTIPLIER_HIGH = np.uint64(PCG64_MULTIPLIER >> 64)
_MULTIPLIER_LOW = np.uint64(PCG64_MULTIPLIER & ((1 << 64) - 1))
_LOW_HALF = np.uint64(0xFFFFFFFF)
_HALF = np.uint64(32)
_ZERO, _ONE = np.uint64(0), np.uint64(1)
_ROTATION_SHIFT = np.uint64(58)  # the state's top six bits give the rotation
_WORD_BITS_MASK = np.uint64(63)
_DOUBLE_SHIFT = np.uint64(11)  # a double takes the output's top 53 bits
_TWO_TO_MINUS_53 = 1.0 / 9007199254740992.0

#: ``exp(-2)``: below it (and above ``1 - exp(-2)``) ndtri uses its tail approximations.
_TAIL = 0.13533528323661269189
_SQRT_2PI = 2.50662827463100050242
# Cephes ndtri's coefficients: the central region in w = (u - 1/2)**2, x / sqrt(2 pi) = w' + w' w P0(w) / Q0(w) with
# w' = u - 1/2; the tails in z = 1 / sqrt(-2 log u), x = t - log(t) / t - z P(z) / Q(z), with (P1, Q1) for t < 8
# and (P2, Q2) beyond. Q's leading coefficient is 1 and not stored.
_P0 = (-5.99633501014107895267E1, 9.80010754185999661536E1, -5.66762857469070293439E1, 1.39312609387279679503E1,
       -1.23916583867381258016E0)
_Q0 = (1.95448858338141759834E0, 4.67627912898881538453E0, 8.63602421390890590575E1, -2.25462687854119370527E2,
       2.00260212380060660359E2, -8.20372256168333339912E1, 1.59056225126211695515E1, -1.18331621121330003142E0)
_P1 = (4.05544892305962419923E0, 3.15251094599893866154E1, 5.71628192246421288162E1, 4.40805073893200834700E1,
       1.46849561928858024014E1, 2.18663306850790267539E0, -1.40256079171354495875E-1, -3.50424626827848203418E-2,
       -8.57456785154685413611E-4)
_Q1 = (1.57799883256466749731E1, 4.53907635128879210584E1, 4.13172038254672030440E1, 1.50425385692907503408E1,
       2.50464946208309415979E0, -1.42182922854787788574E-1, -3.80806407691578277194E-2, -9.33259480895457427372E-4)
_P2 = (3.23774891776946035970E0, 6.91522889068984211695E0, 3.93881025292474443415E0, 1.33303460815807542389E0,
       2.01485389549179081538E-1, 1.23716634817820021358E-2, 3.01581553508235416007E-4, 2.65806974686737550832E-6,
       6.23974539184983293730E-9)
_Q2 = (6.02427039364742014255E0, 3.67983563856160859403E0, 1.37702099489081330271E0, 2.16236993594496635890E-1,
       1.34204006088543189037E-2, 3.28014464682127739104E-4, 2.89247864745380683936E-6, 6.79019408009981274425E-9)


@jit()
def _horner(x, coefficients):
    """``c[0] x**n + ... + c[n]``, in Horner's order (Cephes' ``polevl``)."""
    total = coefficients[0]
    for k in range(1, len(coefficients)):
        total = total * x + coefficients[k]
    return total


@jit()
def _monic_horner(x, coefficients):
    """``x**n + c[0] x**(n-1) + ... + c[n-1]``, in Horner's order (Cephes' ``p1evl``)."""
    total = x + coefficients[0]
    for k in range(1, len(coefficients)):
        total = total * x + coefficients[k]
    return total


@jit()
def ndtri_central(u):
    """ndtri of ``u`` in ``(exp(-2), 1 - exp(-2)]`` (any other ``u`` gives a number, not its ndtri)."""
    w = u - 0.5
    w2 = w * w
    return (w + w * (w2 * _horner(w2, _P0) / _monic_horner(w2, _Q0))) * _SQRT_2PI


@jit()
def ndtri(u):
    """The standard normal quantile of ``u``, as ``scipy.special.ndtri`` gives it: -inf at 0, inf at 1, NaN
    outside ``[0, 1]`` and for NaN."""
    if u == 0.0:
        return -math.inf
    if u == 1.0:
        return math.inf
    if u < 0.0 or u > 1.0:
        return math.nan
    negate = True  # Cephes' order: the upper tail is taken as 1 - u, and the result not negated
    y = u
    if y > 1.0 - _TAIL:
        y = 1.0 - u
        negate = False
    if y > _TAIL:
        return ndtri_central(y)
    t = math.sqrt(-2.0 * math.log(y))
    leading = t - math.log(t) / t
    z = 1.0 / t
    if t < 8.0:
        correction = z * _horner(z, _P1) / _monic_horner(z, _Q1)
    else:
        correction = z * _horner(z, _P2) / _monic_horner(z, _Q2)
    x = leading - correction
    return -x if negate else x


@jit()
def _high_product(a, b):
    """The high 64 bits of the 128-bit product of two 64-bit words."""
    a0, a1, b0, b1 = a & _LOW_HALF, a >> _HALF, b & _LOW_HALF, b >> _HALF
    low, cross0, cross1 = a0 * b0, a0 * b1, a1 * b0
    middle = (low >> _HALF) + (cross0 & _LOW_HALF) + (cross1 & _LOW_HALF)
    return a1 * b1 + (cross0 >> _HALF) + (cross1 >> _HALF) + (middle >> _HALF)


@jit()
def pcg64_doubles(stream, skip, out):
    """Fill ``out`` with a PCG64 stream's doubles ``skip`` to ``skip + out.size - 1`` (NumPy's ``random()``).

    ``stream``: the state before the first double, as four words: state high, state low, increment high,
    increment low (``Generator.bit_generator.state``'s ``state`` and ``inc``)."""
    state_high, state_low, increment_high, increment_low = stream[0], stream[1], stream[2], stream[3]
    for k in range(skip + out.size):
        product_low = state_low * _MULTIPLIER_LOW
        product_high = (_high_product(state_low, _MULTIPLIER_LOW) + state_high * _MULTIPLIER_LOW
                        + state_low * _MULTIPLIER_HIGH)
        state_low = product_low + increment_low
        state_high = product_high + increment_high + (_ONE if state_low < increment_low else _ZERO)
        if k >= skip:
            word = state_high ^ state_low
            rotation = state_high >> _ROTATION_SHIFT
            word = (word >> rotation) | (word << ((_ZERO - rotation) & _WORD_BITS_MASK))
            out[k - skip] = float(word >> _DOUBLE_SHIFT) * _TWO_TO_MINUS_53


@jit()
def clipped_ndtri(uniforms, out, limit):
    """``out = clip(ndtri(uniforms), -limit, limit)``, in passes without branches that the compiler vectorizes: the
    central values, for all; the tails' positions gathered; their logarithms (the C library's, one value at a time);
    the rest of their approximation (``t < 8``); then the few values that need ``ndtri``'s other branches (0, 1,
    outside ``[0, 1]``, NaN, ``t >= 8``). Each value's operations are ``ndtri``'s, in its order: the same bits.
    Taken one by one behind a branch on each value, the tails (a draw in four, at random) cost about twice as much."""
    values = uniforms.size
    for i in range(values):
        out[i] = min(max(ndtri_central(uniforms[i]), -limit), limit)
    tails = np.empty(values, dtype=np.int64)
    count = 0
    for i in range(values):
        u = uniforms[i]
        tails[count] = i
        count += 0 if _TAIL < u <= 1.0 - _TAIL else 1
    t = np.empty(count)
    log_t = np.empty(count)
    for k in range(count):
        u = uniforms[tails[k]]
        y = 1.0 - u if u > 1.0 - _TAIL else u  # Cephes takes the upper tail as 1 - u
        t[k] = math.sqrt(-2.0 * math.log(y))
        log_t[k] = math.log(t[k])
    for k in range(count):
        z = 1.0 / t[k]
        x = (t[k] - log_t[k] / t[k]) - z * _horner(z, _P1) / _monic_horner(z, _Q1)
        i = tails[k]
        out[i] = min(max(x if uniforms[i] > 1.0 - _TAIL else -x, -limit), limit)
    for k in range(count):
        u = uniforms[tails[k]]
        if not (t[k] < 8.0 and 0.0 < u < 1.0):
            out[tails[k]] = min(max(ndtri(u), -limit), limit)


@jit(parallel=True)
def block_normal_scores(streams, block, skip, limit, out):
    """Clipped normal scores of ``mc`` columns from the PCG64 streams of their blocks of draws.

    ``streams`` (columns, blocks, 4): the state of each block's stream before its first draw (as
    :func:`pcg64_doubles` takes it); ``block``: draws per block; ``out`` (columns, draws): draw ``j`` of a column is
    draw ``skip + j`` of its blocks laid end to end, its score ``clip(ndtri(u), -limit, limit)``. Each block is
    one task of the threads, its values computed the same way whichever thread takes it.
    """
    columns, blocks = streams.shape[0], streams.shape[1]
    draws = out.shape[1]
    for task in prange(columns * blocks):
        column, k = task // blocks, task % blocks
        first = max(0, skip - k * block)  # the block's first and last value in the range wanted
        last = min(block, skip + draws - k * block)
        if last > first:
            uniforms = np.empty(last - first)
            pcg64_doubles(streams[column, k], first, uniforms)
            clipped_ndtri(uniforms, out[column, k * block - skip + first: k * block - skip + last], limit)
