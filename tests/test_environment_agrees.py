"""environment.yml (conda) and pyproject.toml must pin the same packages at the same versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)$")


def _pins(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        m = PIN.match(spec.strip())
        assert m, f"{spec!r} is not pinned with ==; pin it so lessons keep working"
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_pyproject_and_environment_yml_pin_the_same_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins([s for s in pip_section if not s.startswith("-e")])
    assert conda == declared


def test_constraints_agree_with_direct_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    lines = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    locked = _pins(lines)
    mismatched = {k: (v, locked.get(k)) for k, v in declared.items() if locked.get(k) != v}
    assert not mismatched, f"constraints.txt disagrees with pyproject.toml: {mismatched}"
