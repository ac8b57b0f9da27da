"""The README's set-up and commands are real: every `kdcompress` command it names exists and has --help."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMANDS = sorted(set(re.findall(r"`kdcompress ([a-z]+)", README)))


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_makefile_installs_what_it_needs():
    mk = (ROOT / "Makefile").read_text()
    assert "apt-get install" in mk and "dataset-fashion-mnist" in mk
    assert "TORCH_PIN := torch==2.13.0" in mk and "install -q $(TORCH_PIN)" in mk
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_exists(cli_cmd, command):
    proc = subprocess.run([*cli_cmd, command, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_readme_commands_found():
    assert {"shrink", "doctor", "profiles", "report", "export"} <= set(COMMANDS)
