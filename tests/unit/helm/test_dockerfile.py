"""The Dockerfile, checked without a container engine: what it copies exists, what it runs exists.

The image cannot be built here. These checks catch what usually breaks a build or a start: a
COPY of a path that moved or that .dockerignore hides, an entrypoint that is not the console
script pyproject.toml declares, a base image mismatch between the stages (the venv's interpreter
path must exist in the runtime stage), running as root, a CMD the CLI does not accept.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from wattscale.cli import build_parser

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def args_defaults() -> dict[str, str]:
    found = {}
    for keyword, rest in instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value
    return found


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, posix) out of the build context."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            excluded = not negate
    return excluded


def test_multi_stage_on_the_same_slim_python_base() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    base = args_defaults()["PYTHON_IMAGE"]
    assert base.startswith("python:3.11-slim@sha256:")
    for stage in all_stages:
        image = stage[0][1].split()[0]
        assert image in ("${PYTHON_IMAGE}", base)
    assert "AS builder" in all_stages[0][0][1]


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    copies = [rest for keyword, rest in instructions() if keyword == "COPY"]
    assert copies
    checked = 0
    for rest in copies:
        words = shlex.split(rest)
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: not in the repository"
            assert not dockerignore_excludes(source.rstrip("/")), f"{source} is .dockerignored"
            checked += 1
    assert checked >= 3


def test_the_package_sources_survive_dockerignore() -> None:
    for path in ("operator/wattscale/__init__.py", "operator/wattscale/cli.py"):
        assert not dockerignore_excludes(path)
    assert dockerignore_excludes("tests/unit/api/test_crds.py")
    assert dockerignore_excludes(".venv/bin/python")
    assert dockerignore_excludes("operator/wattscale/__pycache__/cli.cpython-311.pyc")


def test_the_package_build_finds_what_it_needs() -> None:
    # setuptools reads the readme and finds packages under operator/: both must be copied.
    project = PYPROJECT["project"]
    copied = " ".join(rest for keyword, rest in instructions() if keyword == "COPY")
    assert project["readme"] in copied
    assert "pyproject.toml" in copied
    for where in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]:
        assert f"{where}/" in copied


def test_entrypoint_is_the_declared_console_script() -> None:
    entry = [json.loads(rest) for keyword, rest in instructions() if keyword == "ENTRYPOINT"]
    assert entry == [["wattscale"]]
    target = PYPROJECT["project"]["scripts"]["wattscale"]
    module_name, _, func = target.partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, func))


def test_cmd_runs_the_operator_standalone_on_all_namespaces() -> None:
    cmd = [json.loads(rest) for keyword, rest in instructions() if keyword == "CMD"]
    assert cmd == [["run", "--all-namespaces", "--standalone"]]


def test_cmd_is_accepted_by_the_cli() -> None:
    parser = build_parser()
    commands = {
        name
        for action in parser._actions
        if hasattr(action, "choices") and isinstance(action.choices, dict)
        for name in action.choices
    }
    if "run" not in commands:
        pytest.xfail("`wattscale run` is not implemented yet (issue 8)")
    args = parser.parse_args(["run", "--all-namespaces", "--standalone"])
    assert args.command == "run"


def test_runs_as_non_root_and_is_labelled() -> None:
    final = stages()[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] == "65532"
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    for key in ("title", "version", "revision", "source", "licenses", "description"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert re.search(r'licenses="Apache-2.0"', labels)
    exposed = " ".join(rest for keyword, rest in final if keyword == "EXPOSE").split()
    assert "9464" in exposed


def test_runtime_stage_copies_only_the_venv() -> None:
    final = stages()[-1]
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=builder /opt/wattscale /opt/wattscale"]


# ---- supply chain: the base by digest, every Python package from constraints.txt ----------------

CONSTRAINTS = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not pinned with =="
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), line
        pins[_normal(name)] = version
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, spec
    return _normal(match.group(1))


def test_the_base_image_is_pinned_by_digest() -> None:
    base = args_defaults()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base), base
    for stage in stages():
        assert stage[0][1].split()[0] in ("${PYTHON_IMAGE}", base)


def test_every_declared_dependency_is_pinned() -> None:
    pins = _pins()
    project = PYPROJECT["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    missing = [d for d in declared if _requirement_name(d) not in pins]
    assert not missing, f"constraints.txt does not pin {missing}: run `make constraints`"
    assert "pip" in pins


def test_every_installed_runtime_dependency_is_pinned() -> None:
    """Transitively: what `pip install wattscale` pulls in is in constraints.txt, at the
    version installed here (this venv was built from it by `make venv`)."""
    from importlib import metadata

    from packaging.requirements import Requirement  # pytest's own dependency

    pins = _pins()
    seen: set[str] = set()
    todo = ["wattscale"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_normal(req.name))
    seen.discard("wattscale")
    unpinned = sorted(n for n in seen if n not in pins)
    assert not unpinned, f"not in constraints.txt: {unpinned}"
    drift = {n: (metadata.version(n), pins[n]) for n in seen if metadata.version(n) != pins[n]}
    assert not drift, f"installed != pinned (rebuild the venv: make clean venv): {drift}"


def test_ci_and_the_image_install_from_the_same_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    venv_recipe = makefile.split("$(BIN)/wattscale:", 1)[1].split("\n\n", 1)[0]
    assert "constraints.txt" in venv_recipe.splitlines()[0], "make venv must rebuild on a change"
    installs = [line for line in venv_recipe.splitlines() if "pip install" in line]
    assert installs
    assert all("-c constraints.txt" in line for line in installs), installs
    assert "make venv" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    runs = " ".join(rest for keyword, rest in stages()[0] if keyword == "RUN")
    docker_installs = re.findall(r"pip install[^&]*", runs)
    assert docker_installs
    assert all("-c constraints.txt" in cmd for cmd in docker_installs), docker_installs
    assert not dockerignore_excludes("constraints.txt")
