"""Where the files beside the code are: ``reference_ranges/``, ``migrations/``, ``alembic.ini``.

In this source tree (or an editable install) they sit beside the package; an installed wheel
carries them as data files under ``share/labinterp`` (pyproject.toml), found through the
installed distribution's file list, wherever its prefix is.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def roots() -> list[Path]:
    """Folders that may hold them, in the order they are looked in."""
    found: list[Path] = []
    for root in (SOURCE_ROOT, _installed_root(), Path.cwd().resolve()):
        if root is not None and root not in found:
            found.append(root)
    return found


@cache
def _installed_root() -> Path | None:
    try:
        files = metadata.distribution("labinterp").files or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        parts = file.parts
        if parts[-1] == "alembic.ini" and parts[-3:-1] == ("share", "labinterp"):
            return Path(str(file.locate())).resolve().parent
    return None
