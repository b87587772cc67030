"""Pieces both benchmark scripts share: what machine and which library versions a run used."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def format_load(triple: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in triple)


def spawn_worker(script: str | Path, marker: str, kind: str, *extra: str) -> dict[str, Any]:
    """Run ``script --worker kind *extra`` in a fresh interpreter; the JSON it printed after
    ``marker`` (the last such line). A failed worker raises with the end of its output."""
    command = [sys.executable, str(Path(script).resolve()), "--worker", kind, *extra]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(marker)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} worker failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return json.loads(lines[-1][len(marker) :])
