"""``lumina-hal run script.py``: run a user's ``main(run)`` against a recorded device session.

The contract (docs/records.md §6): the file's top level runs first, without a device, and
must define ``main(run)``; then the device is opened, the record started and ``main`` called
with the ``RecordedRun``. The script's source and hash go into the record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumina_hal.errors import ConfigurationError, LuminaError
from lumina_hal.registry import open_device
from lumina_hal.runs.record_format import to_json
from lumina_hal.runs.records import Bench, record_run

log = logging.getLogger(__name__)

SCRIPT_MODULE_NAME = "__lumina_run__"


class ScriptError(LuminaError, RuntimeError):
    """The user's script raised; ``__cause__`` is its exception."""


@dataclass(frozen=True)
class LoadedScript:
    """A script whose top level has run: its path, source, SHA-256 and ``main``."""

    path: Path
    source: str
    sha256: str
    main: Callable[[Any], Any]


@contextmanager
def _as_module(module: types.ModuleType) -> Iterator[None]:
    """Make ``module`` importable by name while it runs (dataclasses, pickle look it up)."""
    previous = sys.modules.get(module.__name__)
    sys.modules[module.__name__] = module
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop(module.__name__, None)
        else:
            sys.modules[module.__name__] = previous


def load_script(path: str | os.PathLike[str]) -> LoadedScript:
    """Read, compile and run the top level of ``path``; it must define ``main(run)``."""
    target = Path(path)
    if not target.is_file():
        raise ConfigurationError(f"script {str(target)!r} does not exist or is not a file")
    try:
        raw = target.read_bytes()
        source = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read script {str(target)!r}: {exc}") from None
    try:
        code = compile(source, str(target), "exec")
    except SyntaxError as exc:
        raise ConfigurationError(
            f"script {str(target)!r} line {exc.lineno}: syntax error: {exc.msg}"
        ) from None
    module = types.ModuleType(SCRIPT_MODULE_NAME)
    module.__file__ = str(target)
    with _as_module(module):
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            raise ScriptError(
                f"script {target.name}: top level failed: {type(exc).__name__}: {exc}"
            ) from exc
    main = module.__dict__.get("main")
    if not callable(main):
        raise ConfigurationError(
            f"script {str(target)!r} defines no main(run) function; see docs/records.md"
        )
    return LoadedScript(target, source, hashlib.sha256(raw).hexdigest(), main)


def _result_json(result: Any) -> str:
    try:
        return to_json(result, "the value main(run) returned")
    except ConfigurationError as exc:
        log.warning("%s; storing its repr", exc)
        return to_json(repr(result), "repr")


def run_script(
    script: LoadedScript,
    record_path: str | os.PathLike[str],
    *,
    uri: str | None = None,
    bench: Bench | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Open ``uri``, record into ``record_path`` and call ``script.main(run)``.

    A failing ``main`` raises :class:`ScriptError` after the record is closed as
    incomplete and the device is closed.
    """
    meta = {"command": "run", "script": str(script.path)}
    with (
        open_device(uri) as device,
        record_run(
            record_path, device, bench=bench, meta=meta, overwrite=overwrite, progress=progress
        ) as run,
    ):
        run.attach(
            "script",
            {"path": str(script.path), "sha256": script.sha256},
            texts={"source": script.source},
        )
        try:
            result = script.main(run)
        except Exception as exc:
            raise ScriptError(
                f"script {script.path.name}: main(run) failed: {type(exc).__name__}: {exc} "
                f"(record {str(record_path)!r} marked incomplete)"
            ) from exc
        run.attach("script", {"result_json": _result_json(result)})
        calls = run.n_calls
        device_uri = device.uri
    return {"record": str(record_path), "uri": device_uri, "calls": calls, "result": result}
