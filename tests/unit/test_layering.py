"""The package boundaries the code relies on."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import labinterp


def test_labinterp_never_imports_the_worker_package() -> None:
    """The Celery app is built from settings by labinterp.broker; the worker's tasks are found
    by the worker process itself (by name). Importing every labinterp module, in a fresh
    interpreter, leaves `worker` unimported."""
    modules = [
        m.name
        for m in pkgutil.walk_packages(labinterp.__path__, "labinterp.")
        if not m.name.endswith("__main__")  # runs the command line
    ]
    assert len(modules) > 30
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'worker' or m.startswith('worker.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
