"""The package's rooms and their one-way flows (docs/architecture.md), checked on what is installed.

Every ``import`` in every module of the installed package, lazy ones inside functions included,
is mapped to the room it comes from and the room it goes to; an edge the table below does not
allow fails the test with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lumina_hal

PACKAGE = Path(lumina_hal.__file__).resolve().parent

CORE_MODULES = {
    "codes", "crc", "device", "errors", "metrics", "params", "plugin_table", "progress", "grids",
    "tables", "board_timing", "phl1_constants",
    "registry", "uri", "_version", "_lumina_kernel", "package_data",
}  # fmt: skip
#: Old module paths kept as re-exports for one release, and the package facade itself.
FACADES = {
    "", "__main__", "mock", "instruments", "records", "records_load", "physics", "conformance",
}  # fmt: skip

#: room -> the rooms it may import (besides itself and the core).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "twin": set(),
    "bench": set(),
    "drivers": {"bench"},
    "tiling": set(),
    "calibration": {"twin"},
    "runs": {"twin", "bench"},
    "torch": {"twin", "tiling"},
    "pool": {"tiling", "twin"},
    "testing": {"twin", "bench", "drivers", "runs", "calibration", "sim"},
    "sim": {"twin", "bench", "drivers", "runs"},
    "cli": {"twin", "bench", "drivers", "runs", "testing", "sim", "tiling", "calibration", "pool"},
}


def room_of(module: str) -> str | None:
    """The room of a ``lumina_hal...`` module name; None for facades and foreign modules."""
    parts = module.split(".")
    if parts[0] != "lumina_hal":
        return None
    first = parts[1] if len(parts) > 1 else ""
    if first in FACADES:
        return None
    if first in CORE_MODULES:
        return "core"
    if first not in ALLOWED:
        raise AssertionError(f"{module}: no room declared for {first!r} in tests/test_layering.py")
    return first


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "lumina_hal" or node.module is None:  # `from pkg import x`: x a module
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def forbidden_edges() -> list[str]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source_room = room_of(module_name(path))
        if source_room is None:
            continue
        for line, target in imports_of(path):
            target_room = room_of(target)
            if target_room is None or target_room in (source_room, "core"):
                continue
            if target_room not in ALLOWED[source_room]:
                edges.append(f"{path.relative_to(PACKAGE)}:{line}: {source_room} -> {target}")
    return edges


def test_no_module_imports_against_the_flow():
    assert forbidden_edges() == []


def test_the_core_imports_no_room():
    core = [p for p in PACKAGE.glob("*.py") if room_of(module_name(p)) == "core"]
    assert core, "the core modules were not found"
    for path in core:
        rooms = {room_of(t) for _, t in imports_of(path)} - {None, "core"}
        assert not rooms, f"{path.name} imports {rooms}"


def test_the_checker_sees_a_forbidden_edge(tmp_path):
    bad = tmp_path / "lumina_hal" / "twin" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from lumina_hal.runs.records import record_run\nfrom . import physics\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "lumina_hal"
    try:
        assert forbidden_edges() == ["twin/bad.py:1: twin -> lumina_hal.runs.records"]
        assert imports_of(bad)[1] == (2, "lumina_hal.twin.physics")
    finally:
        PACKAGE = saved


@pytest.mark.parametrize("name", ["lumina_hal.drivers", "lumina_hal.sim"])
def test_drivers_and_sim_are_installed_inside_the_package(name):
    assert (PACKAGE / name.split(".")[1]).is_dir()
