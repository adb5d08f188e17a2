"""Column tables with units: what sweeps, spectra and records hand to analysis tools.

A :class:`Table` is named float columns of equal length plus a unit per column. It converts to
an ``xarray.Dataset`` (the first column, or the one named, becomes the dimension; every unit is
an attribute) or a ``pandas.DataFrame`` (units in ``DataFrame.attrs``), and plots one column
against another. xarray and pandas are optional (the ``xarray`` extra): without them the
conversion raises UnsupportedOperationError, never ImportError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lumina_hal.errors import InputError, UnsupportedOperationError


@dataclass(frozen=True)
class Table:
    """Equal-length float columns (``columns``) and their units (``units``, '' if none)."""

    columns: Mapping[str, np.ndarray]
    units: Mapping[str, str] = field(default_factory=dict)
    title: str = ""

    def __post_init__(self) -> None:
        lengths = {name: np.shape(values) for name, values in self.columns.items()}
        if len({shape for shape in lengths.values()}) > 1:
            raise InputError(f"table columns differ in length: {lengths}")
        unknown = set(self.units) - set(self.columns)
        if unknown:
            raise InputError(f"units given for columns the table does not have: {sorted(unknown)}")

    @classmethod
    def from_rows(
        cls, rows: Sequence[Mapping[str, float]], units: Mapping[str, str], title: str = ""
    ) -> Table:
        """A table from dict rows (every row has the same keys)."""
        names = list(rows[0]) if rows else list(units)
        columns = {n: np.array([row[n] for row in rows], dtype=np.float64) for n in names}
        return cls(columns, {n: u for n, u in units.items() if n in columns}, title)

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), np.empty(0))
        return int(np.shape(first)[0]) if np.ndim(first) else 0

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise InputError(f"no column {name!r}; columns: {', '.join(self.columns)}")
        return np.asarray(self.columns[name])

    def to_xarray(self, dim: str | None = None) -> Any:
        """An ``xarray.Dataset`` indexed by ``dim`` (default: the first column); each
        variable's ``attrs['units']`` is its unit."""
        try:
            import xarray as xr
        except ImportError:
            raise UnsupportedOperationError(
                "to_xarray needs xarray: pip install 'lumina-hal[xarray]'"
            ) from None
        dim = dim or next(iter(self.columns))
        index = self.column(dim)
        data = {
            name: (dim, np.asarray(values), {"units": self.units.get(name, "")})
            for name, values in self.columns.items()
            if name != dim
        }
        coords = {dim: (dim, index, {"units": self.units.get(dim, "")})}
        return xr.Dataset(data, coords=coords, attrs={"title": self.title})

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame``; ``.attrs['units']`` maps column to unit."""
        try:
            import pandas as pd
        except ImportError:
            raise UnsupportedOperationError(
                "to_pandas needs pandas: pip install 'lumina-hal[xarray]'"
            ) from None
        frame = pd.DataFrame({name: np.asarray(v) for name, v in self.columns.items()})
        frame.attrs["units"] = dict(self.units)
        frame.attrs["title"] = self.title
        return frame

    def plot(self, x: str, y: str, png_path: str | os.PathLike[str], *, title: str = "") -> Path:
        """``y`` against ``x`` (labelled with their units) written to ``png_path``."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        xs, ys = self.column(x), self.column(y)
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
        try:
            ax.plot(xs, ys, ".-", ms=3)
            ax.set_xlabel(_label(x, self.units.get(x, "")))
            ax.set_ylabel(_label(y, self.units.get(y, "")))
            ax.grid(True, alpha=0.3)
            ax.set_title(title or self.title)
            fig.tight_layout()
            path = Path(png_path)
            fig.savefig(path)
        finally:
            plt.close(fig)
        return path


def _label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name
