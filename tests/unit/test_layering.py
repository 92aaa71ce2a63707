"""The package boundaries the code relies on."""

from __future__ import annotations

import importlib
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


def test_the_domain_never_imports_the_ruleset_file_validators() -> None:
    """The pure engine reads a built Ruleset; reading and validating ruleset files is
    labinterp.rulesets' job. Importing every domain module, in a fresh interpreter, leaves
    labinterp.rulesets (the loader and its validators) and yaml unimported."""
    domain = importlib.import_module("labinterp.domain")
    modules = [m.name for m in pkgutil.walk_packages(domain.__path__, "labinterp.domain.")]
    assert "labinterp.domain.ruleset" in modules
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m == 'yaml' or m.startswith('labinterp.rulesets')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
