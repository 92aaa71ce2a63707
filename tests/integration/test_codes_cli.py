"""`labinterp codes import FILE --clinic NAME`: a clinic's local result codes from CSV, every
bad line named and nothing imported then, the same file again changing nothing; audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.worker_process import REPO, labinterp_cli


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labinterp", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_codes_import_names_bad_lines_then_imports_and_lists(tmp_path: Path) -> None:
    env = {"LABINTERP_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": ""}
    labinterp_cli(env, "clinics", "create", "lab")
    bad = tmp_path / "bad.csv"
    bad.write_text("system,code,analyte\n99LAB,MG,magnesium\n99LAB,GLU,glucose\n99LAB,MG,sodium\n")
    refused = _run(env, "codes", "import", str(bad), "--clinic", "lab")
    assert refused.returncode == 1
    assert "line 3: unknown analyte 'glucose'" in refused.stderr
    assert "line 4: code 'MG' of system '99LAB' is also on line 2" in refused.stderr
    assert labinterp_cli(env, "codes", "list", "--clinic", "lab") == "system,code,analyte\n"

    good = tmp_path / "codes.csv"
    good.write_text("system,code,analyte\n99lab,MG,Magnesium\n,K1,potassium\n")
    out = labinterp_cli(env, "codes", "import", str(good), "--clinic", "lab")
    assert out.strip() == "clinic lab: 2 codes added, 0 changed, 0 unchanged"
    again = labinterp_cli(env, "codes", "import", str(good), "--clinic", "lab")
    assert again.strip() == "clinic lab: 0 codes added, 0 changed, 2 unchanged"
    listed = labinterp_cli(env, "codes", "list", "--clinic", "lab").splitlines()
    assert listed == ["system,code,analyte", ",K1,potassium", "99LAB,MG,magnesium"]
    missing = _run(env, "codes", "import", str(good), "--clinic", "nowhere")
    assert missing.returncode == 1 and "no clinic 'nowhere'" in missing.stderr
