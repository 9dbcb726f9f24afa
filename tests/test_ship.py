"""What a generated project ships with beyond its code: a clean tree from an installed
wheel, and a container image that builds and serves (see also tests/test_matrix.py, which
validates every combination's Dockerfile, compose.yaml and CI workflow).
"""

from __future__ import annotations

import compileall
import http.cookies
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import copier
import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
# What a checkout holds that a build does not need (the template history falls back to
# the packaged version alone without .git, with a warning).
NOT_BUILT = (".git", ".cache", ".venv*", "__pycache__", "*.egg-info", "dist", "build")


def _bytecode(paths: list[str]) -> list[str]:
    return [p for p in paths if "__pycache__" in p.split("/") or p.endswith((".pyc", ".pyo"))]


def build_wheel(src: Path, out: Path) -> Path:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).is_file():
        cmd = [uv, "build", "--wheel", "--out-dir", str(out), str(src)]
    else:
        cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}"
    wheels = list(out.glob("sessionforge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_no_bytecode_from_an_installed_template(tmp_path: Path) -> None:
    # A checkout whose template has bytecode caches in it, as a test run or an editor
    # leaves them: none of it may reach the wheel.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_BUILT))
    stale = src / "template" / "tests" / "__pycache__" / "conftest.cpython-311.pyc"
    stale.parent.mkdir()
    stale.write_bytes(b"\0stale")
    wheel = build_wheel(src, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "sessionforge/_template/copier.yml" in names
        assert any(n.startswith("sessionforge/_template/template/src/") for n in names)
        assert not _bytecode(names), f"bytecode in the wheel: {_bytecode(names)}"
        # The combination model is the tests' and the benchmark's (tests/support/combos.py).
        assert "sessionforge/combos.py" not in names
        tests_or_bench = [n for n in names if n.split("/")[0] in ("tests", "bench")]
        assert not tests_or_bench, f"tests or bench in the wheel: {tests_or_bench}"
        site = tmp_path / "site"
        zf.extractall(site)

    # pip compiles every .py file it installs (the template has a few plain .py files),
    # so an installed template always has __pycache__ folders: Copier must skip them.
    template = site / "sessionforge" / "_template"
    assert compileall.compile_dir(str(template), quiet=1)
    compiled = [p.as_posix() for p in template.rglob("*.pyc")]
    assert compiled, "compileall compiled nothing: the check below would prove nothing"

    project = tmp_path / "project"
    copier.run_copy(
        str(template),
        project,
        data={"project_name": "from wheel"},
        defaults=True,
        unsafe=False,
        quiet=True,
    )
    assert (project / "src" / "from_wheel" / "__init__.py").is_file()
    rendered = [p.relative_to(project).as_posix() for p in project.rglob("*")]
    assert not _bytecode(rendered), f"bytecode in the project: {_bytecode(rendered)}"


# --------------------------------------------------------------------------- the image
#
# Build a generated project's Dockerfile with podman and serve it against the local
# servers. No registry is reachable here, so the base image (PYTHON_IMAGE) is made
# locally: Debian bookworm by debootstrap, with python3 and its venv module, imported
# into podman once and reused (the rootfs tarball is kept under .cache/podman).

CACHE = REPO / ".cache" / "podman"
BASE_IMAGE = "localhost/sessionforge-base"
# Bump to import the base image again (e.g. after changing its settings), and rename
# BASE_ROOTFS to debootstrap it again (after changing BASE_PACKAGES).
BASE_FORMAT = "2"
BASE_ROOTFS = "base-rootfs-bookworm.tar"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
# The bundle this machine trusts (it may hold a TLS-inspecting proxy's CA): the image
# builds fetch packages through the same network.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# podman from Debian's packages on these machines: no ulimits to set, and runc (crun
# refuses hybrid cgroup v1/v2 hierarchies: "cgroups in hybrid mode not supported").
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'
LOCAL_URLS = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/{name}",
    "mysql": "mysql://root@127.0.0.1:3306/{name}",
}
IMAGE_COMBOS = [
    pytest.param({}, id="async-sqlite-session-example"),
    pytest.param(
        {"backend": "postgres", "auth": "jwt", "example_api": False},
        id="async-postgres-jwt-noexample",
    ),
    pytest.param(
        {"mode": "sync", "backend": "redis", "database": "mysql"},
        id="sync-redis-mysql-session-example",
    ),
]


def _podman_env() -> dict[str, str]:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        conf = CACHE / "containers.conf"
        if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
            conf.write_text(CONTAINERS_CONF)
        env["CONTAINERS_CONF"] = str(conf)
    return env


def _run(cmd: list[str], timeout: float = 900, **kwargs: Any) -> str:
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}"
    return proc.stdout


def _podman(*args: str, timeout: float = 900) -> str:
    return _run(["podman", *args], timeout=timeout, env=_podman_env())


def _make_base_image() -> None:
    rootfs_tar = CACHE / BASE_ROOTFS
    if not rootfs_tar.is_file():
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        rootfs = CACHE / "rootfs-build"
        shutil.rmtree(rootfs, ignore_errors=True)
        _run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                str(rootfs),
                "http://deb.debian.org/debian",
            ],
            timeout=1800,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)
        if HOST_CA_BUNDLE.is_file():
            shutil.copy2(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        partial = rootfs_tar.with_suffix(".partial")
        _run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
        partial.rename(rootfs_tar)
        shutil.rmtree(rootfs, ignore_errors=True)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    _podman(
        "import",
        "--quiet",
        "--change",
        f"LABEL sessionforge.base={BASE_FORMAT}",
        "--change",
        f"ENV SSL_CERT_FILE={bundle}",
        "--change",
        f"ENV PIP_CERT={bundle}",
        "--change",
        'CMD ["python3"]',
        str(rootfs_tar),
        BASE_IMAGE,
    )


@pytest.fixture(scope="session")
def base_image() -> str:
    if shutil.which("podman") is None:
        if os.environ.get("SESSIONFORGE_REQUIRE_PODMAN"):
            pytest.fail("podman is not installed (bash .ci/run installs it)")
        pytest.skip("podman is not installed (bash .ci/run installs it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE / "base.lock"), timeout=3600):
        try:
            label = _podman(
                "image",
                "inspect",
                "--format",
                '{{ index .Labels "sessionforge.base" }}',
                BASE_IMAGE,
            ).strip()
        except AssertionError:
            label = ""
        if label != BASE_FORMAT:
            _make_base_image()
    return BASE_IMAGE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, Any]:
    return _request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )


@contextmanager
def _server_database(database: str, name: str) -> Iterator[str]:
    """A database of this test's own on the local server (dropped afterwards)."""
    if database == "postgres":
        admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"]
    elif database == "mysql":
        admin = ["mariadb", "-h", "127.0.0.1", "-uroot", "-e"]
    else:
        yield "sqlite:////app/data/app.db"
        return
    _run([*admin, f"CREATE DATABASE {name}"], timeout=60)
    try:
        yield LOCAL_URLS[database].format(name=name)
    finally:
        _run([*admin, f"DROP DATABASE IF EXISTS {name}"], timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("answers", IMAGE_COMBOS)
def test_image_builds_and_serves(base_image: str, tmp_path: Path, answers: dict[str, Any]) -> None:
    started = time.monotonic()
    project = tmp_path / "project"
    package = f"img_{secrets.token_hex(3)}"
    src = tmp_path / "template-src"
    shutil.copytree(REPO / "template", src / "template", ignore=shutil.ignore_patterns(*NOT_BUILT))
    shutil.copy2(REPO / "copier.yml", src / "copier.yml")
    copier.run_copy(
        str(src),
        project,
        data={"project_name": package, **answers},
        defaults=True,
        unsafe=False,
        quiet=True,
    )
    mode = answers.get("mode", "async")
    backend = answers.get("backend", "sqlite")
    database = answers.get("database", backend)
    auth = answers.get("auth", "session")
    # One tag per combination, so a rebuild reuses its cached dependency layer.
    image = "localhost/sessionforge-test-" + "-".join([mode, backend, database, auth])
    _podman(
        "build",
        "--quiet",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={base_image}",
        "--tag",
        image,
        str(project),
        timeout=1800,
    )
    built = time.monotonic()

    name = f"sf_{package}"
    volume = f"sessionforge-test-{package}"
    # Production needs an SMTP server; nothing these checks do sends mail.
    env = {"SECRET_KEY": secrets.token_urlsafe(32), "SMTP_URL": "smtp://127.0.0.1:2525"}
    if backend == "redis":
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        env["REDIS_PREFIX"] = f"{name}:"
    port = _free_port()
    container = f"sessionforge-test-{package}"
    with _server_database(database, name) as database_url:
        env["DATABASE_URL"] = database_url
        flags = ["--network", "host", "--volume", f"{volume}:/app/data"]
        for key, value in env.items():
            flags += ["--env", f"{key}={value}"]
        try:
            # Migrations: a command of their own, as the Dockerfile documents.
            _podman("run", "--rm", *flags, image, "alembic", "upgrade", "head", timeout=300)
            # The image's own command, with two workers.
            _podman(
                "run",
                "--detach",
                "--name",
                container,
                *flags,
                "--env",
                f"PORT={port}",
                "--env",
                "WEB_CONCURRENCY=2",
                # The test's requests come from 127.0.0.1: the proxy, here.
                "--env",
                "FORWARDED_ALLOW_IPS=127.0.0.1",
                image,
                timeout=120,
            )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            status: int | None = None
            while time.monotonic() < deadline:
                try:
                    status, body, _ = _request(f"{base}/health")
                    if status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            logs = lambda: _podman("logs", container, timeout=60)  # noqa: E731
            assert status == 200, f"/health never answered 200 ({status}):\n{logs()}"
            assert body == {"status": "ok", "database": "ok", "sessions": "ok"}

            # Behind a TLS proxy (FORWARDED_ALLOW_IPS): the app sees https.
            proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
            creds = {"email": f"{package}@example.com", "password": "correct horse battery"}
            status, body, _ = _post_json(f"{base}/auth/register", creds, proxy)
            assert status == 201, (status, body, logs())
            if auth == "jwt":
                form = urllib.parse.urlencode(
                    {"username": creds["email"], "password": creds["password"]}
                ).encode()
                status, body, _ = _request(
                    f"{base}/auth/token", data=form, headers=proxy, method="POST"
                )
                assert status == 200, (status, body, logs())
                me_headers = {**proxy, "Authorization": f"Bearer {body['access_token']}"}
            else:
                status, body, headers = _post_json(f"{base}/auth/login", creds, proxy)
                assert status == 200, (status, body, logs())
                jar = http.cookies.SimpleCookie()
                for header in headers.get_all("Set-Cookie") or []:
                    jar.load(header)
                cookie = jar.get("__Host-session")
                assert cookie is not None, f"no __Host-session cookie: {headers}"
                assert cookie["secure"], "the session cookie is not Secure"
                me_headers = {**proxy, "Cookie": f"__Host-session={cookie.value}"}
            status, body, _ = _request(f"{base}/auth/me", headers=me_headers)
            assert (status, body.get("email")) == (200, creds["email"]), (status, body, logs())
        finally:
            subprocess.run(
                ["podman", "rm", "--force", "--time", "5", container],
                env=_podman_env(),
                capture_output=True,
                check=False,
                timeout=120,
            )
            subprocess.run(
                ["podman", "volume", "rm", "--force", volume],
                env=_podman_env(),
                capture_output=True,
                check=False,
                timeout=120,
            )
            if backend == "redis":
                _delete_redis_prefix(env["REDIS_PREFIX"])
    print(f"image {image}: build {built - started:.1f}s, total {time.monotonic() - started:.1f}s")


def _delete_redis_prefix(prefix: str) -> None:
    keys = _run(["redis-cli", "-h", "127.0.0.1", "--scan", "--pattern", f"{prefix}*"], 60)
    names = keys.split()
    if names:
        _run(["redis-cli", "-h", "127.0.0.1", "del", *names], 60)
