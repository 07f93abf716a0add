"""``exp``, ``expm1`` and ``log1p`` for loops over draws that LLVM compiles to vector instructions ("lanes").

The engine's scalar ``exp`` (:mod:`impact.kernels.exponential`) reads a table, and glibc's ``expm1`` and ``log1p``
are calls: none of them vectorizes (a table's lookups become gathers, measured no faster than one by one). These
are written with neither tables nor branches: every step is an IEEE operation or a select, so a loop of them over
64 draws runs in AVX-512 or AVX2 registers, about 1 ns a value against 3-5 ns for the scalar functions
(``benchmarks/bench_lanes.py``). No step is a fused multiply-add (numba compiles without fastmath), so a value
gets the same bits in a vector loop, one by one, on every CPU, and in Python (``IMPACT_DISABLE_JIT=1``).

* ``lane_exp(x)``: ``x = k ln2 + r``, ``|r| <= ln2/2`` (Cody and Waite's reduction, ``ln2`` in two parts), ``e^r``
  by its Taylor polynomial to ``r^13`` (Horner), and ``2^k`` built from bits. Within 1 ulp of the correctly
  rounded value.
* ``lane_expm1(x)``: the same reduction, ``e^r - 1 = r + r^2 p(r)`` (to ``r^14``), and
  ``2^k (e^r - 1) + (2^k - 1)``, exact for ``k = 0``, so accurate near 0; ``2^k e^r - 1`` near overflow. Within 2 ulps.
* ``lane_log1p(x)``: ``1 + x = 2^e m`` with ``m`` in [sqrt(1/2), sqrt(2)) (the exponent from the bits, shifted so
  that no branch is needed), ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``, by its series to ``s^21``, and the
  rounding error of ``1 + x`` added back to first order. Within 2 ulps.

Arguments of any magnitude are handled: ``2^k`` is the product of two normal powers of two (the argument first
clamped to +-1400, beyond which every result is 0, -1 or inf), so results overflow, underflow and turn subnormal as
they should; NaN gives NaN; ``log1p`` of -1 is -inf and of less than -1 NaN. The tests check the errors against
the ``math`` module on random and edge arguments (``tests/test_lanes_math.py``).
"""

from __future__ import annotations

import math

from impact.accelerate import bits_from_float, float_from_bits, jit

_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")   # ln 2 to 32 bits: k * _LN2_HI is exact for |k| < 2^21
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # the rest of ln 2
_INV_LN2 = float.fromhex("0x1.71547652b82fep0")
#: Adding and subtracting 1.5 * 2^52 rounds a double of magnitude below 2^51 to the nearest integer.
_ROUND = float.fromhex("0x1.8p52")
#: Arguments are clamped to +-_LIMIT: beyond it e^x is 0 or inf in doubles, and 2^k stays a product of two normal
#: powers of two.
_LIMIT = 1400.0
#: ``k`` above which ``2^k`` itself may overflow although ``e^x - 1`` does not: ``expm1`` then takes ``2^k e^r - 1``.
_EXPM1_LARGE_K = 1000.0
_EXPONENT_BIAS = 1023
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # the bits of sqrt(1/2)
_ONE_BITS = 0x3FF0000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_TWO52_BITS = 0x4330000000000000  # 2^52: or-ing a small integer into its mantissa adds it, exactly
_TWO52 = float.fromhex("0x1p52")
# 1/k! for the Taylor polynomials of e^r (|r| <= ln2/2: the term in r^14 is below 2^-60 of the sum).
_F2, _F3, _F4, _F5, _F6, _F7, _F8, _F9, _F10, _F11, _F12, _F13, _F14 = (1.0 / math.factorial(k) for k in range(2, 15))
# 1/(2k+1) for 2 atanh(s) = 2 (s + s^3/3 + ...), |s| <= 0.1716 (the term in s^23 is below 2^-60 of the sum).
_A3, _A5, _A7, _A9, _A11, _A13, _A15, _A17, _A19, _A21 = (1.0 / d for d in range(3, 22, 2))


@jit()
def _reduce(x):
    """``x = k ln2 + r`` with ``|r| <= ln2/2``; returns ``(r, k, a, b)`` with ``2^k = a b``, each a normal power of
    two for ``|x| <= _LIMIT`` (so that a product by ``a`` then ``b`` overflows or underflows only if its result
    does)."""
    x = _LIMIT if x > _LIMIT else x
    x = -_LIMIT if x < -_LIMIT else x
    k = (x * _INV_LN2 + _ROUND) - _ROUND
    r = x - k * _LN2_HI - k * _LN2_LO
    whole = int(k) if k == k else 0  # NaN: any k will do, r is NaN and so is every result
    half = whole >> 1
    return (r, k, float_from_bits((half + _EXPONENT_BIAS) << 52),
            float_from_bits((whole - half + _EXPONENT_BIAS) << 52))


@jit()
def _exp_poly(r):
    """``(e^r - 1 - r) / r^2`` to ``r^12``."""
    p = _F14 * r + _F13
    p = p * r + _F12
    p = p * r + _F11
    p = p * r + _F10
    p = p * r + _F9
    p = p * r + _F8
    p = p * r + _F7
    p = p * r + _F6
    p = p * r + _F5
    p = p * r + _F4
    p = p * r + _F3
    return p * r + _F2


@jit()
def lane_exp(x):
    """``e^x``, within 1 ulp, with neither a table nor a branch (see the module's description)."""
    r, _, a, b = _reduce(x)
    return ((_exp_poly(r) * r * r + r) + 1.0) * a * b


@jit()
def lane_expm1(x):
    """``e^x - 1``, within 2 ulps and accurate near 0, with neither a table nor a branch."""
    r, k, a, b = _reduce(x)
    small = r + r * r * _exp_poly(r)  # e^r - 1
    scale = a * b
    return (small + 1.0) * a * b - 1.0 if k > _EXPM1_LARGE_K else scale * small + (scale - 1.0)


@jit()
def lane_log1p(x):
    """``log(1 + x)``, within 2 ulps, with neither a table nor a branch (see the module's description)."""
    u = 1.0 + x
    # log(1 + x) = log(u) + correction, to first order (0 where u is 0: Python would raise, and the result is
    # -inf)
    correction = (x - (u - 1.0)) / (u if u != 0.0 else 1.0)
    shifted = bits_from_float(u) + (_ONE_BITS - _SQRT_HALF_BITS)
    e = float_from_bits(_TWO52_BITS | (shifted >> 52)) - (_TWO52 + _EXPONENT_BIAS)
    m = float_from_bits((shifted & _MANTISSA) + _SQRT_HALF_BITS)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = _A21 * z + _A19
    p = p * z + _A17
    p = p * z + _A15
    p = p * z + _A13
    p = p * z + _A11
    p = p * z + _A9
    p = p * z + _A7
    p = p * z + _A5
    p = p * z + _A3
    result = e * _LN2_HI + (2.0 * s + 2.0 * s * z * p + (e * _LN2_LO + correction))
    result = math.inf if u == math.inf else result
    result = -math.inf if u == 0.0 else result
    return math.nan if not u >= 0.0 else result
