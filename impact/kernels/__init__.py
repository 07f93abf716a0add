"""Numerical kernels: each fast numba kernel lives beside a plain NumPy reference of the same equations."""
