"""Compiled data structures with pure-Python reference twins.

Each kernel lives in one module (Cython ``*.pyx`` or numba ``*.py``) beside its twin
(``*_py.py``). This package imports only numpy, numba and Cython-built code.
"""
