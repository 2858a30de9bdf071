"""One JSON fallback for everything edgekit writes: numpy scalars and arrays, dataclasses, paths."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Any

import numpy as np


def json_default(value: Any) -> Any:
    """``default=`` for ``json.dumps``: numbers computed with numpy are stored as the plain numbers they are.

    >>> import json
    >>> json.dumps({"accuracy": np.float32(0.5), "counts": np.arange(3)}, default=json_default)
    '{"accuracy": 0.5, "counts": [0, 1, 2]}'
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
