"""The set-up path installs locked versions: constraints.txt pins every package `.[dev]` needs exactly, the
Makefile installs with it, and the running environment is the lock's (so CI tests what users install)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = ROOT / "constraints.txt"
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
LOCK_TOOL = runpy.run_path(str(ROOT / "tools" / "lock.py"))


def locked() -> dict[str, str]:
    """constraints.txt as {canonical name: version}; every line must be an exact pin."""
    pins: dict[str, str] = {}
    for line in LOCK_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s=;,<>!~]+)", line)
        assert match, f"constraints.txt: {line!r} is not an exact `name==version` pin"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt: {name} pinned twice"
        pins[name] = match[2]
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name} \?= (\S+)$", MAKEFILE, re.M)
    assert match, f"Makefile has no {name} ?= ..."
    return match[1]


def test_every_dependency_of_pyproject_is_pinned_in_the_lock_within_its_range() -> None:
    pins = locked()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name == "torch":  # pinned by the Makefile (TORCH), so a GPU box can pick its build
            assert name not in pins
            version = makefile_variable("TORCH").split("==")[1]
        else:
            assert name in pins, f"{req.name} is not in constraints.txt: run `make lock`"
            version = pins[name]
        assert req.specifier.contains(version, prereleases=True), f"{name}=={version} is outside {req}"


def test_the_lock_leaves_out_what_the_makefile_pins() -> None:
    pins = locked()
    model_package = makefile_variable("MODEL_PACKAGE").split("==")[0]
    assert not {"embedforge", "torch", canonicalize_name(model_package)} & set(pins)


def test_every_resolving_pip_install_of_make_setup_and_ci_uses_the_lock() -> None:
    setup = MAKEFILE.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert setup.startswith(" pyproject.toml Makefile $(LOCK)")  # a new lock reinstalls
    assert re.search(r"^LOCK := constraints\.txt$", MAKEFILE, re.M)
    installs = [line for line in setup.splitlines() if "pip install" in line]
    assert len(installs) == 3
    for line in installs:
        assert "--no-deps" in line or line.endswith("-c $(LOCK)"), line
    # CI runs the Makefile's set-up (make lint / docs / test all depend on it)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci and "pip install" not in ci
    assert re.search(r"^test: setup$", MAKEFILE, re.M) and re.search(r"^lint: setup$", MAKEFILE, re.M)


def test_the_running_environment_is_the_locked_one() -> None:
    have = LOCK_TOOL["lock_lines"](LOCK_TOOL["closure"]())
    want = [line for line in LOCK_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert have == want, (
        "the installed packages differ from constraints.txt (`make setup` installs the lock; `make lock` "
        f"re-resolves it): installed, not locked {sorted(set(have) - set(want))}; "
        f"locked, not installed {sorted(set(want) - set(have))}"
    )


def test_the_lock_tool_walks_extras_and_markers() -> None:
    dists = LOCK_TOOL["closure"]("embedforge", ())
    with_dev = LOCK_TOOL["closure"]()
    assert "pytest" in with_dev and "pytest" not in dists  # a dev extra
    assert "mkdocstrings-python" in with_dev  # mkdocstrings[python]: the extra of a dependency
    assert "torch" in dists and "sympy" in dists  # torch's own requirements are locked, torch is not
    assert "torch" not in "".join(LOCK_TOOL["lock_lines"](dists))
