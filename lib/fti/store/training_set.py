"""Training sets: materialized as Delta tables, described by a manifest, rebuildable to the same hash.

The manifest (``training_set.json``, stored beside the table as ``<table>.training_set.json`` and
logged with the model) records the spine and every feature group at the Delta version read, the key and
column mappings, TTLs, the spine filter, the code version, the leakage report, and a content hash.
Table locations inside the home are relative to it, so a moved home still works.

The content hash does not depend on file layout or partitioning: each row is encoded canonically (JSON of
its columns in name order, timestamps to the microsecond in UTC), hashed with SHA-256, the digests are
sorted, and the hash is SHA-256 over the sorted digests (collected to the driver as Arrow and sorted there).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


def content_hash(df: DataFrame) -> str:
    """Layout-independent SHA-256 of a DataFrame's rows (see the module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql import functions as F

    cols = sorted(df.columns)
    encoded = F.to_json(F.struct(*[F.col(f"`{c}`") for c in cols]),
                        {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX", "ignoreNullFields": "false"})
    # one pass computes the digests, which arrive as Arrow (68 bytes a row on the driver) and are sorted there
    # (a sort in Spark would encode and hash every row twice: once to sample the range bounds, once to sort)
    digests = df.select(F.sha2(encoded, 256).alias("d")).toArrow().column("d")
    total = hashlib.sha256()
    total.update(("|".join(cols) + "\n").encode())
    if len(digests) == 0:
        return total.hexdigest()
    ordered = pc.take(digests, pc.sort_indices(digests)).combine_chunks()
    # a string array's data buffer is its values back to back, so hashing the buffer equals hashing the digests
    # one by one (10x faster than rows)
    _, offsets, data = ordered.buffers()
    width = np.int64 if pa.types.is_large_string(ordered.type) else np.int32
    bounds = np.frombuffer(offsets, dtype=width)[ordered.offset:ordered.offset + len(ordered) + 1]
    total.update(memoryview(data)[bounds[0]:bounds[-1]])
    return total.hexdigest()


def code_version() -> str:
    """The git commit of the project when run from a checkout, else the package version."""
    import fti

    root = Path(__file__).resolve().parents[3]
    if not (root / "setup.py").is_file():  # an installed wheel (site-packages), not the project's checkout
        return f"fti=={fti.__version__}"
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"fti=={fti.__version__}"
