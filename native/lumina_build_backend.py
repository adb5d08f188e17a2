"""In-tree PEP 517 build backend: setuptools, run with native/setup_kernel.py.

The project keeps a fixed top level with no setup.py, but cffi's ``cffi_modules`` is a
``setup()`` keyword that pyproject.toml cannot express. This backend is setuptools'
own backend with one change: the setup script it runs lives in native/.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools_backend

_SETUP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "setup_kernel.py")


class _KernelBackend(_setuptools_backend._BuildMetaBackend):
    def run_setup(self, setup_script: str = "setup.py") -> None:
        super().run_setup(setup_script=_SETUP_SCRIPT)


_BACKEND = _KernelBackend()

get_requires_for_build_wheel = _BACKEND.get_requires_for_build_wheel
get_requires_for_build_sdist = _BACKEND.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = _BACKEND.prepare_metadata_for_build_wheel
build_wheel = _BACKEND.build_wheel
build_sdist = _BACKEND.build_sdist
get_requires_for_build_editable = _BACKEND.get_requires_for_build_editable
prepare_metadata_for_build_editable = _BACKEND.prepare_metadata_for_build_editable
build_editable = _BACKEND.build_editable
