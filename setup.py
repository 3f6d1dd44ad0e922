"""Builds the Cython kernels (kernels/*.pyx -> ponder.kernels.*); everything else is in pyproject.toml."""

from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        f"ponder.kernels.{pyx.stem}",
        [pyx.as_posix()],
        include_dirs=[numpy.get_include()],
        language="c++",
        extra_compile_args=["-O3", "-std=c++17"],
    )
    for pyx in sorted(Path("kernels").glob("*.pyx"))
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}))
