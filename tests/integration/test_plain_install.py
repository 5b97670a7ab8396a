"""A wheel installed without extras serves (issue 10, defect 1): build the wheel, install it into
a clean virtual environment with only the pinned runtime dependencies, `init`, `serve`, and
make one round trip over HTTP. Catches undeclared dependencies and files missing from the wheel
(templates, schemas, the grammar), which an editable `.[dev]` install hides.

Slow (a virtual environment and a pip install): marked `slow`; `make quick` leaves it out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900
START_TIMEOUT = 60.0
ADMIN = "plain@example.com"

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_environment(database_url: str) -> dict[str, str]:
    """This process's environment without anything that would leak the development install
    into the clean one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        and not k.startswith("METACRM_")
    }
    return {
        **env,
        "METACRM_DATABASE_URL": database_url,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Removed at the end whatever happens: a virtual environment is large."""
    path = Path(tempfile.mkdtemp(prefix="metacrm-plain-install-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def installed(workdir: Path) -> Path:
    """The bin directory of a fresh virtual environment holding the wheel and its pinned
    runtime dependencies, nothing else."""
    env = clean_environment(f"sqlite:///{workdir}/plain.db")
    wheels = workdir / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
        workdir,
        env,
        INSTALL_TIMEOUT,
    )
    [wheel] = wheels.glob("metacrm-*.whl")
    run([sys.executable, "-m", "venv", str(workdir / "venv")], workdir, env)
    bin_dir = workdir / "venv" / "bin"
    constraints = str(ROOT / "constraints.txt")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "-c", constraints]
    run([*pip, str(wheel)], workdir, env, INSTALL_TIMEOUT)
    listed = run([str(bin_dir / "python"), "-m", "pip", "list"], workdir, env)
    # The proof is only worth something if nothing from the dev extra came along.
    for dev_only in ("pytest", "hypothesis", "schemathesis", "ruff"):
        assert f"\n{dev_only} " not in listed.lower(), listed
    return bin_dir


def wait_until_healthy(server: subprocess.Popen[str], url: str) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"`metacrm serve` exited with {server.returncode}:\n{output}")
        try:
            return httpx.get(f"{url}/healthz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"`metacrm serve` did not answer within {START_TIMEOUT:.0f} s")


def stop(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)


def test_a_wheel_installed_without_extras_initialises_serves_and_round_trips_a_record(
    installed: Path, workdir: Path
) -> None:
    env = clean_environment(f"sqlite:///{workdir}/plain.db")
    metacrm = str(installed / "metacrm")
    run([metacrm, "init", "--admin-email", ADMIN], workdir, env)
    token = run([metacrm, "token", "create", "--user", ADMIN], workdir, env).strip()
    assert token.startswith("mcrm_")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [metacrm, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = wait_until_healthy(server, url)
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok", "database": "ok", "redis": "disabled"}
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            # The CRM templates came with the wheel (package data and entry point) and init
            # installed them.
            listed = client.get("/api/v1/meta/entities").json()["data"]
            assert {"lead", "customer", "ticket"} <= {e["name"] for e in listed}
            entity = {
                "name": "issue",
                "label": {"en": "Issue"},
                "fields": [{"name": "subject", "type": "text", "required": True}],
            }
            made = client.post("/api/v1/meta/entities", json=entity)
            assert made.status_code == 201, made.text
            created = client.post("/api/v1/records/issue", json={"subject": "Printer on fire"})
            assert created.status_code == 201, created.text
            read = client.get(created.headers["location"])
            assert read.status_code == 200, read.text
            assert read.json()["subject"] == "Printer on fire"
            assert read.headers["etag"] == '"1"'
            # Packaged templates render, and the document is generated from the metadata.
            document = client.get("/api/v1/openapi.json")
            assert document.status_code == 200, document.text
            assert "/api/v1/records/issue" in document.json()["paths"]
            docs = client.get("/api/docs")
            assert docs.status_code == 200 and 'id="op-list"' in docs.text
    finally:
        stop(server)
    assert server.returncode is not None
