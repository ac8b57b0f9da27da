"""The package as users install it: ``python -m build`` makes an sdist and, from it, a wheel that carries every data
file the library reads; installed into a fresh virtual environment (reusing this environment's torch and the other
dependencies, so nothing is downloaded), ``kdcompress`` runs from another folder."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sh(*args, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.slow  # ~25 s: builds and installs the wheel in a fresh venv
def test_the_wheel_installs_and_runs_from_any_folder(tmp_path, tiny_npz, teacher_files, tiny_profile):
    dist = tmp_path / "dist"
    built = sh(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("kdcompress-*.whl")
    assert len(list(dist.glob("kdcompress-*.tar.gz"))) == 1

    env = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", "--without-pip", env, cwd=tmp_path).returncode == 0
    py = env / "bin" / "python"
    env_site = Path(sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
                    .stdout.strip())
    # the dependencies come from this environment; a path line in a .pth does not run that folder's own .pth
    # files, so the editable install of the source tree stays out of the new environment
    (env_site / "reuse_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    installed = sh(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", wheel,
                   cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]

    where = sh(py, "-c", "import kdcompress, pathlib; p = pathlib.Path(kdcompress.__file__).parent; "
               "print(p); print((p / 'py.typed').exists()); "
               "from kdcompress.search.combo import shipped_weights; print(sorted(shipped_weights()))", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    folder, typed, weights = where.stdout.splitlines()
    assert Path(folder).is_relative_to(env) and typed == "True" and "synflow" in weights

    kd = env / "bin" / "kdcompress"
    listed = sh(kd, "profiles", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["ci", "cpu", "demo", "edge", "front", "server"]
    assert "search:" in sh(kd, "profiles", "show", "edge", cwd=tmp_path).stdout

    run = sh(kd, "shrink", teacher_files["pt2"], "--profile", tiny_profile, "--data", tiny_npz, "--out", "out",
             "--set", "export.int8=false", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["students"] and (tmp_path / "out" / "result.json").exists()
