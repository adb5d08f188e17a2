"""setuptools entry for the build: everything is in pyproject.toml except cffi_modules."""

from setuptools import setup

setup(cffi_modules=["native/kernel_build.py:ffibuilder"])
