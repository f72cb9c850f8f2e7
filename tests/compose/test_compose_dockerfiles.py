"""The Dockerfiles: parsed by BuildKit's own parser, multi-stage, non-root, locked installs.

The images cannot be built here (no Docker daemon), so what a build would rely on is checked instead:
every file a COPY names is in the build context and not excluded by .dockerignore, the entry point is
the one the package declares, and the Elasticsearch image's dictionary step is run on sample files.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import pytest
from compose_loading import COMPOSE_FILE, ROOT, WORKERS, interpolate, load_yaml

pytestmark = pytest.mark.unit

UV_IMAGE = re.compile(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)")
PYTHON_DOCKERFILE = "docker/newsflow/Dockerfile"
ES_DOCKERFILE = "docker/elasticsearch/Dockerfile"
ALL_DOCKERFILES = [PYTHON_DOCKERFILE, ES_DOCKERFILE]


def _python_images() -> dict[str, tuple[str, str]]:
    """Compose service -> (workspace package, console script) of every image built from the one Dockerfile."""
    compose = interpolate(load_yaml(COMPOSE_FILE.read_text()), {})
    return {
        name: (b["args"]["PACKAGE"], b["args"]["COMMAND"])
        for name, svc in compose["services"].items()
        if (b := svc.get("build")) and b.get("dockerfile") == PYTHON_DOCKERFILE
    }


PYTHON_IMAGES = _python_images()


def _parse(path: str) -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(ROOT / path))


def _stages(cmds: tuple[dockerfile.Command, ...]) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for c in cmds:
        if c.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(c)
    return stages


def _members() -> dict[str, Path]:
    """Workspace package name -> member directory (relative to the root)."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    out = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for manifest in sorted(ROOT.glob(f"{pattern}/pyproject.toml")):
            meta = tomllib.loads(manifest.read_text())
            out[meta["project"]["name"]] = manifest.parent.relative_to(ROOT)
    return out


def _workspace_closure(package: str) -> set[str]:
    """The package and every workspace member it depends on, transitively."""
    members = _members()
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        meta = tomllib.loads((ROOT / members[name] / "pyproject.toml").read_text())
        for dep in meta["project"].get("dependencies", []):
            dep_name = re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]
            if dep_name in members:
                todo.append(dep_name)
    return seen


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (or a parent directory of it) out of the build context."""
    patterns = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        glob = pat.replace("**/", "*")
        if any(fnmatch.fnmatch(c, pat) or fnmatch.fnmatch(c, glob) for c in candidates):
            ignored = not negate
    return ignored


# --- every Dockerfile -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_DOCKERFILES)
def test_dockerfile_is_multi_stage_and_ends_non_root(path: str) -> None:
    stages = _stages(_parse(path))
    assert len(stages) >= 2, "build tools stay in a builder stage"
    final = stages[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    # Nothing after the last USER may switch back.
    last_user = max(i for i, c in enumerate(final) if c.cmd == "USER")
    assert all(c.cmd != "USER" for c in final[last_user + 1 :])


@pytest.mark.parametrize("path", ALL_DOCKERFILES)
def test_base_images_are_pinned(path: str) -> None:
    for c in _parse(path):
        if c.cmd == "FROM":
            image = c.value[0]
            assert ":" in image and not image.endswith(":latest"), image


INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR",
    "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def _problems(cmds: tuple[dockerfile.Command, ...]) -> list[str]:
    """What BuildKit's parser lets through but `docker build` refuses later."""
    out = []
    for c in cmds:
        where = f"line {c.start_line}: {c.original}"
        if c.cmd not in INSTRUCTIONS:
            out.append(f"unknown instruction, {where}")
        elif c.cmd in ("COPY", "ADD") and len(c.value) < 2:
            out.append(f"needs a source and a destination, {where}")
        elif c.cmd == "ENV" and (not c.value or len(c.value) % 2):
            out.append(f"needs KEY=value pairs, {where}")
        elif c.cmd in ("RUN", "CMD", "ENTRYPOINT", "USER", "WORKDIR", "FROM") and not "".join(c.value).strip():
            out.append(f"needs an argument, {where}")
        elif c.cmd in ("RUN", "CMD", "ENTRYPOINT") and not c.json and c.value[0].lstrip().startswith("["):
            out.append(f"broken exec form (not JSON), {where}")
    if cmds and cmds[0].cmd not in ("FROM", "ARG"):
        out.append("the first instruction must be FROM (or ARG)")
    return out


@pytest.mark.parametrize("path", ALL_DOCKERFILES)
def test_dockerfile_is_well_formed(path: str) -> None:
    assert _problems(_parse(path)) == []


def test_the_checks_reject_broken_dockerfiles() -> None:
    # The checks above rest on BuildKit's parser and on _problems; both must refuse what `docker build` would.
    with pytest.raises(dockerfile.GoParseError):
        dockerfile.parse_string("FROM python:3.11-slim\nRUN <<EOF\necho\n")
    with pytest.raises(dockerfile.GoParseError):
        dockerfile.parse_string("FROM a\nENV A\n")
    broken = dockerfile.parse_string('FROM a\nFORM b\nCOPY onlyone\nCMD ["x"\n')
    assert len(_problems(broken)) == 3


# --- the Python images ----------------------------------------------------------------------------


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_python_image_installs_the_locked_package_deps_first(image: str) -> None:
    package, _command = PYTHON_IMAGES[image]
    assert package in _members(), package
    cmds = _parse(PYTHON_DOCKERFILE)
    builder = _stages(cmds)[-2]
    runs = [(i, c) for i, c in enumerate(builder) if c.cmd == "RUN" and "uv sync" in c.value[0]]
    assert len(runs) == 2, "one sync for the dependencies, one for the project"
    for _, run in runs:
        args = run.value[0].split()
        # --frozen: install exactly uv.lock; --no-dev: no test tools in images; only this package's deps.
        assert {"--frozen", "--no-dev"} <= set(args)
        assert args[args.index("--package") + 1].strip('"') == "$PACKAGE"
        assert any(f.startswith("--mount=type=cache") and "/root/.cache/uv" in f for f in run.flags)
    (deps_i, deps), (src_i, src) = runs
    assert "--no-install-workspace" in deps.value[0].split()
    assert "--no-editable" in src.value[0].split(), "the runtime stage gets the venv without the sources"
    # The dependency layer sees only manifests; sources are copied after it.
    before = [c for c in builder[:deps_i] if c.cmd == "COPY" and not c.flags]
    between = [c for c in builder[deps_i:src_i] if c.cmd == "COPY"]
    assert all(s == "uv.lock" or s.endswith("pyproject.toml") for c in before for s in c.value[:-1])
    assert between, "the sources are copied after the dependency layer"


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_python_image_copies_what_uv_needs(image: str) -> None:
    package, _command = PYTHON_IMAGES[image]
    builder = _stages(_parse(PYTHON_DOCKERFILE))[-2]
    copied = {s.rstrip("/") for c in builder if c.cmd == "COPY" and not c.flags for s in c.value[:-1]}
    members = _members()
    # Every member's manifest, or uv cannot read the workspace at all.
    for member in members.values():
        assert f"{member}/pyproject.toml" in copied, member
    # The source of the package and of every workspace member it depends on (or a parent directory).
    for name in _workspace_closure(package):
        member = members[name]
        assert any(member == Path(c) or Path(c) in member.parents for c in copied if c != "."), name
    for src in copied:
        assert (ROOT / src).exists(), src
        assert not _ignored(src), f"{src} is excluded by .dockerignore"


def test_python_image_pins_uv_and_python() -> None:
    path = PYTHON_DOCKERFILE
    text = (ROOT / path).read_text()
    versions = set(UV_IMAGE.findall(text))
    assert len(versions) == 1, "uv comes from its official image at one exact version"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pinned = re.search(r'^UV_VERSION="?([\d.]+)"?$', setup, flags=re.M)
    assert pinned, "scripts/setup.sh pins uv"
    assert versions == {pinned.group(1)}, "the images use the uv that wrote uv.lock"
    python = (ROOT / ".python-version").read_text().strip()
    bases = [c.value[0] for c in _parse(path) if c.cmd == "FROM" and c.value[0].startswith("python:")]
    assert bases and all(b.startswith(f"python:{python}-slim") for b in bases), bases


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_python_image_runs_the_declared_entry_point(image: str) -> None:
    package, command = PYTHON_IMAGES[image]
    meta = tomllib.loads((ROOT / _members()[package] / "pyproject.toml").read_text())
    assert command in meta["project"]["scripts"], f"{command} is not a console script of {package}"
    builder, runtime = _stages(_parse(PYTHON_DOCKERFILE))[-2:]
    link = [c.value[0] for c in builder if c.cmd == "RUN" and "/app/entrypoint" in c.value[0]]
    assert link and 'ln -s "/app/.venv/bin/$COMMAND" /app/entrypoint' in link[0]
    (entry,) = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    assert entry.json and entry.value == ("/app/entrypoint",), "exec form, so the process is PID 1 and gets SIGTERM"
    env = {c.value[i]: c.value[i + 1] for c in runtime if c.cmd == "ENV" for i in range(0, len(c.value), 2)}
    assert env["PATH"].strip('"').startswith("/app/.venv/bin:")
    copies = [c for c in runtime if c.cmd == "COPY"]
    assert [c.value for c in copies] == [("/app", "/app")], "only the venv (and its entry link) ships"


def test_every_newsflow_service_builds_from_the_one_dockerfile(services) -> None:
    for name in (*WORKERS, "init", "cli"):
        assert services[name]["build"]["dockerfile"] == PYTHON_DOCKERFILE, name


def test_worker_images_probe_health_without_curl(health_server) -> None:
    runtime = _stages(_parse(PYTHON_DOCKERFILE))[-1]
    (hc,) = [c for c in runtime if c.cmd == "HEALTHCHECK"]
    assert hc.value[:3] == ("CMD", "python", "-c")
    env = {**os.environ, "NEWSFLOW_METRICS_PORT": str(health_server.port)}
    codes = {}
    for status in (200, 503):
        health_server.status = status
        codes[status] = subprocess.run([sys.executable, "-c", hc.value[3]], env=env, capture_output=True).returncode
    assert codes[200] == 0 and codes[503] != 0


def test_worker_images_agree_with_compose(services) -> None:
    runtime = _stages(_parse(PYTHON_DOCKERFILE))[-1]
    env = {c.value[i]: c.value[i + 1] for c in runtime if c.cmd == "ENV" for i in range(0, len(c.value), 2)}
    for svc in WORKERS:
        assert env["NEWSFLOW_METRICS_PORT"] == services[svc]["environment"]["NEWSFLOW_METRICS_PORT"]
        assert env["NEWSFLOW_METRICS_HOST"] == services[svc]["environment"]["NEWSFLOW_METRICS_HOST"] == "0.0.0.0"


# --- the Elasticsearch image ----------------------------------------------------------------------


def _es_script_value(name: str) -> str:
    text = (ROOT / "scripts" / "elasticsearch.sh").read_text()
    m = re.search(rf'^{name}="([^"]*)"', text, flags=re.M)
    assert m, name
    return m.group(1)


def test_es_image_adds_the_dictionaries_the_tests_use() -> None:
    cmds = _parse(ES_DOCKERFILE)
    hunspell_stage, final = _stages(cmds)
    args = dict(c.value[0].split("=", 1) for c in hunspell_stage if c.cmd == "ARG")
    assert args["HUNSPELL_LOCALES"].strip('"').split() == _es_script_value("HUNSPELL_LOCALES").split()
    script = (ROOT / "scripts" / "elasticsearch.sh").read_text()
    wanted = set(re.findall(r"\bhunspell-[a-z-]+", script))
    installed = {w for c in hunspell_stage if c.cmd == "RUN" for w in re.findall(r"\bhunspell-[a-z-]+", c.value[0])}
    assert wanted and installed == wanted
    (copy,) = [c for c in final if c.cmd == "COPY"]
    assert "--from=hunspell" in copy.flags
    assert copy.value[-1].rstrip("/") == "/usr/share/elasticsearch/config/hunspell"


def _hunspell_step() -> str:
    hunspell_stage = _stages(_parse(ES_DOCKERFILE))[0]
    (step,) = [c.value[0] for c in hunspell_stage if c.cmd == "RUN" and "/out/hunspell" in c.value[0]]
    return step


def _run_step(tmp_path: Path, locales: str) -> subprocess.CompletedProcess[str]:
    src, out = tmp_path / "share", tmp_path / "out"
    script = _hunspell_step().replace("/usr/share/hunspell/", f"{src}/").replace("/out/", f"{out}/")
    return subprocess.run(
        ["sh", "-c", script], env={"HUNSPELL_LOCALES": locales, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )


def test_es_image_dictionary_step_moves_set_first(tmp_path: Path) -> None:
    # Sample dictionaries in Debian's layout; the Arabic-like one declares SET far down, as Debian's does.
    share = tmp_path / "share"
    share.mkdir()
    (share / "ar.aff").write_text("FLAG long\n" + "AF x # 1\n" * 50 + "SET UTF-8\nTRY abc\n", encoding="utf-8")
    (share / "ar.dic").write_text("1\nكتاب\n", encoding="utf-8")
    (share / "en_US.aff").write_text("SET UTF-8\nTRY esianrtolcdugmphbyfvkwzESIANRTOLCDUGMPHBYFVKWZ'\n")
    (share / "en_US.dic").write_text("1\nrocket/S\n")
    result = _run_step(tmp_path, "en_US ar")
    assert result.returncode == 0, result.stderr
    ar = (tmp_path / "out" / "hunspell" / "ar" / "ar.aff").read_text(encoding="utf-8").splitlines()
    assert ar[0] == "SET UTF-8"
    assert ar.count("SET UTF-8") == 1 and len(ar) == 53
    assert (tmp_path / "out" / "hunspell" / "ar" / "ar.dic").read_text(encoding="utf-8") == "1\nكتاب\n"
    en = (tmp_path / "out" / "hunspell" / "en_US" / "en_US.aff").read_text().splitlines()
    assert en[0] == "SET UTF-8" and len(en) == 2


def test_es_image_dictionary_step_fails_on_a_missing_dictionary(tmp_path: Path) -> None:
    (tmp_path / "share").mkdir()
    result = _run_step(tmp_path, "de_DE")
    assert result.returncode != 0
    assert "de_DE" in result.stderr
