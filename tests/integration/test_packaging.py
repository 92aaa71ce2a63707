"""labinterp installed from its wheel, away from this source tree, runs: it carries its
rulesets, its migrations and alembic.ini (pyproject.toml's data files)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

from tests.integration.worker_process import REPO


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=REPO,
        check=True,
        timeout=300,
    )


def test_the_installed_wheel_upgrades_a_database_and_loads_its_rulesets_anywhere(tmp_path):
    _pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO))
    wheel = next((tmp_path / "dist").glob("labinterp-*.whl"))
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip would first uninstall the editable labinterp of this
    # venv (its dist-info and its `labinterp` command)
    _pip(
        "install",
        "--no-deps",
        "--no-compile",
        "--ignore-installed",
        "--prefix",
        str(prefix),
        str(wheel),
    )
    site = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LABINTERP_", "DATABASE_"))},
        "PYTHONPATH": site,  # before the editable install of this tree
        "LABINTERP_INSTANCE": str(tmp_path / "instance"),
    }

    def labinterp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labinterp", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import labinterp.resources as r; print(r.roots())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(REPO) not in where and str(prefix / "share" / "labinterp") in where, where

    upgraded = labinterp("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "newest schema" in upgraded.stdout
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from labinterp.rulesets import load_rulesets as l; print(sorted(l()))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert "'2026.1', '2026.2'" in listed.stdout
    created = labinterp("clinics", "create", "installed")
    assert created.returncode == 0, created.stderr
