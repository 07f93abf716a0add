"""PCG64's constants, shared by the NumPy seeding of the design's streams (:func:`impact.sampling.block_states`)
and their compiled form (:mod:`impact.kernels.scores_numba`), in a module that imports nothing, so that the NumPy
path does not load numba."""

#: PCG64's 128-bit LCG multiplier (numpy/random/src/pcg64).
PCG64_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
