"""`metacrm demo` and `metacrm init --demo` as real processes on SQLite: the demo loads with
progress lines and a summary, only into a fresh database, and every refusal is one line on
stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = "0.02"


def metacrm(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METACRM_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "metacrm.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    """Exit status 1 and the reason alone on one line of stderr."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("metacrm: ") and reason in result.stderr, result.stderr


def test_init_with_demo_loads_it_on_a_fresh_database_and_demo_refuses_a_second_load(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = metacrm(sqlite_url, tmp_path, "init", "--demo", SMALL)
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    login = next(i for i, line in enumerate(out) if line.startswith("admin login: "))
    start = out.index("crm demo (seed 1, scale 0.02):")
    # The admin's one-time password comes before the demo: a failed demo can't swallow it.
    assert login < start
    assert out[start + 1].startswith("  made 40 lead records, 16 customer records")
    assert "  demo users (password metacrm-demo), @demo.example.com:" in out
    assert "    sales reps: rep.east1" in "\n".join(out)
    assert out[-1].startswith("  ") and out[-1].endswith(" rows/s)")
    # Not a terminal: a plain progress line per tenth, the last at 100%.
    progress = first.stderr.splitlines()
    assert 5 <= len(progress) <= 11 and progress[-1].startswith("progress: 100% ")

    again = metacrm(sqlite_url, tmp_path, "init", "--demo", SMALL)
    assert again.returncode == 0, again.stderr
    assert "crm demo" not in again.stdout and again.stderr == ""
    refused(metacrm(sqlite_url, tmp_path, "demo", "--scale", SMALL), "has records already")
    refused(
        metacrm(sqlite_url, tmp_path, "demo", "--scale", SMALL, "--force"),
        "the demo users exist already (vp@demo.example.com and 29 more)",
    )


@pytest.mark.parametrize(
    ("setup", "args", "reason"),
    [
        ((), ("demo",), "not initialised; run `metacrm init` first"),
        (("init", "--no-templates"), ("demo",), "no installed plugin has demo data"),
        (("init",), ("demo", "--scale", "0"), "--scale must be above 0"),
    ],
)
def test_demo_refusals_are_one_line(
    sqlite_url: str, tmp_path: Path, setup: tuple[str, ...], args: tuple[str, ...], reason: str
) -> None:
    if setup:
        assert metacrm(sqlite_url, tmp_path, *setup).returncode == 0
    refused(metacrm(sqlite_url, tmp_path, *args), reason)


def test_a_demo_the_changed_templates_refuse_stops_at_that_step_and_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert metacrm(sqlite_url, tmp_path, "init").returncode == 0
    # The admin makes every proposal need a competitor: the demo's opportunities don't say.
    package = json.loads(metacrm(sqlite_url, tmp_path, "meta", "export").stdout)
    sales = next(p for p in package["pipelines"] if p["name"] == "opportunity_sales")
    proposal = next(s for s in sales["stages"] if s["key"] == "proposal")
    proposal["entry_condition"] = "competitor is not null"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(package), "utf-8")
    assert metacrm(sqlite_url, tmp_path, "meta", "import", str(changed)).returncode == 0
    result = metacrm(sqlite_url, tmp_path, "demo", "--scale", SMALL)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("metacrm: the demo stopped at opportunity opportunity:"), last
    assert "(update by rep." in last and "entering Proposal needs competitor is not null" in last
