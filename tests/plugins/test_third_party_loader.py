"""A third-party loader plugin, installed with pip beside ragbridge, teaches a real
`ragbridge ingest` a new format (Hancom Office's HWPX) with no change to ragbridge's code; a
broken plugin stops the command with one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.hwpx_files import write_hwpx
from tests.support.cli import run_ragbridge
from tests.support.server import ragbridge_env

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parent / "ragbridge_hwpx"

HANDBOOK = [
    [
        "제1장 휴가",
        "연차 휴가는 입사 1년 후 15일이 주어지며, 3년마다 하루씩 늘어납니다.",
        "병가는 연 60일까지 유급으로 쓸 수 있고, 진단서를 인사팀에 내야 합니다.",
    ],
    ["제2장 출장", "해외 출장비는 출장 전 결재를 받은 뒤 법인카드로 결제합니다."],
]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin's own pyproject.toml, built and installed by pip into a folder of its own
    (offline: setuptools is the backend, already installed), as a user's `pip install` would."""
    root = tmp_path_factory.mktemp("hwpx")
    source = shutil.copytree(PLUGIN, root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    site = root / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"),
            *("--no-build-isolation", "--target", str(site), str(source)),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    assert (site / "ragbridge_hwpx-0.1.0.dist-info" / "entry_points.txt").is_file()
    return site


def run(*args: str | Path, site: Path | None, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter, with `site` (the plugin's install folder) on its path."""
    path = os.pathsep.join([*([str(site)] if site else []), os.environ.get("PYTHONPATH", "")])
    return run_ragbridge(
        *args, "--data-dir", data_dir, env=ragbridge_env(PYTHONPATH=path, COLUMNS="200")
    )


def test_an_installed_loader_plugin_makes_hwpx_searchable(
    plugin_site: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    write_hwpx(docs / "취업규칙.hwpx", "2026년 취업규칙", HANDBOOK)
    (docs / "안내.md").write_text(
        "# 안내\n\n사내 식당은 오전 11시 30분에 엽니다.\n", encoding="utf-8"
    )
    data = tmp_path / "data"

    ingest = run("ingest", docs, "--collection", "규정", site=plugin_site, data_dir=data)

    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert "2 added, 0 updated, 0 unchanged, 0 failed" in ingest.stdout
    assert "Skipped" not in ingest.stdout  # the folder walk takes .hwpx now

    question = "연차 휴가는 며칠 주어지나요?"
    search = run(
        "search", question, "--collection", "규정", "--json", site=plugin_site, data_dir=data
    )
    assert search.returncode == 0, search.stderr
    top = json.loads(search.stdout)[0]
    assert top["source"] == "취업규칙.hwpx", top
    assert top["metadata"]["title"] == "2026년 취업규칙"  # the package's <opf:title>
    assert "연차 휴가는 입사 1년 후 15일이 주어지며" in top["text"]


def test_without_the_plugin_hwpx_is_skipped_as_unsupported(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_hwpx(docs / "취업규칙.hwpx", "취업규칙", HANDBOOK)

    ingest = run("ingest", docs, "-c", "규정", site=None, data_dir=tmp_path / "data")

    assert ingest.returncode == 1
    assert ".hwpx files are not a supported type" in ingest.stdout
    assert "No files to ingest." in ingest.stdout


def test_a_plugin_that_fails_to_import_stops_ingest_with_one_clear_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "ragbridge_broken-0.2.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ragbridge-broken\nVersion: 0.2.0\n"
    )
    (dist / "entry_points.txt").write_text("[ragbridge.loaders]\nhwp = ragbridge_broken:LOADER\n")
    (site / "ragbridge_broken.py").write_text("import olefile_that_is_not_installed\n")
    (tmp_path / "메모.txt").write_text("회의는 목요일 오후 2시입니다.\n", encoding="utf-8")

    ingest = run(
        "ingest", tmp_path / "메모.txt", "-c", "memo", site=site, data_dir=tmp_path / "data"
    )

    assert ingest.returncode == 1
    expected = (
        "plugin 'hwp' (ragbridge.loaders, ragbridge_broken:LOADER from ragbridge-broken 0.2.0) "
        "failed to load: ModuleNotFoundError: No module named 'olefile_that_is_not_installed'"
    )
    assert f"Error: {expected}" in ingest.stdout
    assert expected in ingest.stderr  # the log line
    assert "Traceback" not in ingest.stdout + ingest.stderr
