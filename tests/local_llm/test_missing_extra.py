"""Without llama-cpp-python, a configured local model stops `ragbridge serve` with one line.

Runs everywhere: a `sitecustomize` makes `import llama_cpp` fail in the child process, as on a
machine without the `local-llm` extra.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cli import run_ragbridge
from tests.support.server import ragbridge_env

BLOCKER = """
import importlib.abc, sys

class _NoLlama(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoLlama())
"""


def test_serve_without_the_extra_says_so_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    env = ragbridge_env(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))

    result = run_ragbridge("serve", "--port", "1", "--local-model", model, env=env, timeout=120)

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "llama-cpp-python" in lines[0] and "ragbridge[local-llm]" in lines[0]
    assert "docs/local-llm.md" in lines[0]


def test_serve_with_a_file_that_is_not_gguf_says_so(tmp_path: Path) -> None:
    model = tmp_path / "notes.gguf"
    model.write_text("not a model")
    env = ragbridge_env(tmp_path / "data", RAGBRIDGE_LOCAL_MODEL=str(model))

    result = run_ragbridge("serve", "--port", "1", env=env, timeout=120)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # Without the extra the first problem is the missing package; with it, the file.
    assert "not a GGUF file" in result.stderr or "llama-cpp-python" in result.stderr
