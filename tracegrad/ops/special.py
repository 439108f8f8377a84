"""Vectorised special functions on NumPy arrays (NumPy has no `erf`).

`erf_np(x)` is a two-piece polynomial approximation, written for whole arrays:

    |x| < 1          erf(x) = x * P(x^2)                     (erf(x)/x is smooth in x^2)
    |x| >= 1         erf(x) = sign(x) * (1 - exp(-x^2) * Q(t)),  t = 2 / (2 + |x|)

Q approximates the scaled complementary error function erfcx(a) =
exp(a^2) * erfc(a), which is smooth and slowly varying (erfc itself falls off
like exp(-a^2), which no short polynomial follows); in the variable t it is
nearly a low-degree polynomial. |x| is clipped where erfc drops below half an
ulp of 1 (6 in float64, 4 in float32), past which erf rounds to +-1 anyway.

Both pieces are computed for every element and then selected with `np.where`:
a boolean-mask gather and scatter cost more than evaluating a short polynomial
everywhere. The coefficients are Chebyshev (near-minimax) fits computed once in
40-digit arithmetic (mpmath.chebyfit) and stored here. float64 inputs land
within 2 ulps of the correctly rounded result; float32 inputs use shorter
polynomials evaluated in float32 (within 3 float32 ulps). NaN stays NaN,
erf(+-inf) = +-1, erf(-0.0) = -0.0."""
from __future__ import annotations

import numpy as np

# erf(x)/x as a polynomial in s = x^2 on [0, 1] (highest degree first)
_A64 = (-4.230945824295338e-12, 8.709045129053106e-11, -1.216456005728345e-09, 1.4792401209404813e-08,
        -1.6364642158167616e-07, 1.6462045441468418e-06, -1.4925647567519332e-05, 0.00012055332902888736,
        -0.000854832702193483, 0.0052239776254232985, -0.02686617064512984, 0.1128379167095512,
        -0.37612638903183754, 1.1283791670955126)
_A32 = (-9.667044571486996e-06, 0.00011265959025606609, -0.0008484080405535107, 0.005221031807858023,
        -0.026865430727670243, 0.11283782495236845, -0.3761263846802871, 1.1283791670615435)
# erfcx(a) as a polynomial in v = 2 / (2 + a) - center, for a in [1, 6] (float64) or [1, 4] (float32)
_C64, _END64 = 0.4583333333333333, 6.0
_T64 = (-0.07440021243346044, 0.007900644479126367, 0.07629064767929084, -0.053626788346919536,
        -0.04019389745415357, 0.08180581174693825, -0.003821523760261688, -0.09475504141704388,
        0.046072947052449825, 0.1162138167632501, -0.08977886869684613, -0.20586174236040428,
        0.10464967652779404, 0.6180783702414044, 0.888435542596203, 0.7770891265969198, 0.2214295402299318)
_C32, _END32 = 0.5, 4.0
_T32 = (0.12085243316317101, -0.05354175831351077, -0.22383537323519864, 0.059714261620848155,
        0.6318281861802679, 0.9666328443628978, 0.8543716952286861, 0.25539567625190335)


def _horner(coefs, x: np.ndarray) -> np.ndarray:
    """Evaluate the polynomial (highest degree first) at x, in x's dtype."""
    dt = x.dtype.type
    r = np.full_like(x, dt(coefs[0]))
    for c in coefs[1:]:
        r *= x
        r += dt(c)
    return r


def erf_np(x: np.ndarray) -> np.ndarray:
    """erf of a float array, same dtype out (float16 is computed in float32)."""
    x = np.asarray(x)
    if x.ndim == 0:  # NumPy turns 0-d results into scalars, which the out= steps below cannot take
        return erf_np(x.reshape(1)).reshape(())
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.dtype == np.float16:
        return erf_np(x.astype(np.float32)).astype(np.float16)
    f32 = x.dtype == np.float32
    dt = x.dtype.type
    a = np.abs(x)
    # |x| >= 1: 1 - exp(-a^2) * erfcx(a), with a clipped to the end of the fit
    c = np.clip(a, dt(1), dt(_END32 if f32 else _END64))
    v = dt(2) / (c + dt(2))
    v -= dt(_C32 if f32 else _C64)
    tail = _horner(_T32 if f32 else _T64, v)
    tail *= np.exp(-c * c)
    tail = dt(1) - tail
    np.copysign(tail, x, out=tail)
    # |x| < 1: x * P(x^2), computed on the clipped value so large inputs cannot overflow
    s = np.minimum(a, dt(1))
    s *= s
    head = _horner(_A32 if f32 else _A64, s)
    head *= x
    return np.where(a < 1, head, np.where(np.isnan(x), x, tail))
