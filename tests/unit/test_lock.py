"""The lock file the install uses agrees with pyproject.toml's pins, so the two cannot drift:
a dependency bumped in one place and not the other fails here, not in production."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKED = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {canonicalize_name(name): version for name, version in LOCKED.findall(text)}


def declared_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins: dict[str, str] = {}
    for line in lines:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier  # every dependency is pinned exactly
        assert specifier.operator == "==", f"{line} is not pinned with =="
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_every_pinned_dependency_is_locked_at_the_same_version() -> None:
    locked = locked_versions()
    mismatched = {
        name: (version, locked.get(name))
        for name, version in declared_pins().items()
        if locked.get(name) != version
    }
    assert not mismatched, f"pyproject pin vs lock (run `make lock`): {mismatched}"


def test_every_locked_package_carries_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split()[0] and "--hash=" not in b]
    assert not unhashed, f"packages without hashes: {unhashed}"
