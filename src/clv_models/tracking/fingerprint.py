"""Provenance of a run: what data, which code, which package version.

These values become MLflow tags (data fingerprint, git commit), so they must be deterministic and
must never fail a run: :func:`git_commit` answers ``None`` rather than raising.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where it is used, so importing this module stays cheap
    import pandas as pd

_CHUNK = 1 << 20  # 1 MiB: bounded memory for files of any size
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256 repositories


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(df: pd.DataFrame) -> str:
    """Hex SHA-256 of a frame's content: column names, dtypes, index and values, in order.

    Built on ``pd.util.hash_pandas_object(df, index=True)`` (one uint64 per row, with pandas'
    fixed default hash key), so equal frames give equal digests across processes for a given
    pandas version. Column names and dtypes are hashed too: the same numbers as ``int64`` and as
    ``float64``, or under other column names, are different data. Cells that pandas cannot hash
    (lists, dicts) raise ``TypeError``.
    """
    import pandas as pd

    digest = hashlib.sha256()
    header = [[str(name), str(dtype)] for name, dtype in df.dtypes.items()]
    digest.update(json.dumps(header, ensure_ascii=False).encode("utf-8"))
    # Fixed byte order, so the digest does not depend on the machine's endianness.
    rows = pd.util.hash_pandas_object(df, index=True).to_numpy().astype("<u8", copy=False)
    digest.update(rows.tobytes())
    return digest.hexdigest()


def git_commit(cwd: str | Path = ".") -> str | None:
    """The commit checked out in the repository containing ``cwd`` (``git rev-parse HEAD``).

    ``None`` when ``cwd`` is not inside a repository, the repository has no commit yet, git is
    not installed, or git does not answer within 10 s: provenance must never fail a run.
    """
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # git missing, cwd missing, timeout
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and _COMMIT.fullmatch(commit) else None


def package_version() -> str:
    """Installed version of ``clv_models`` ("0.0.0" when running from a source tree without installation)."""
    try:
        return version("clv_models")
    except PackageNotFoundError:
        return "0.0.0"
