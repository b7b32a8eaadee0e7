"""Security review, kept: calls that would let a file run code or a path reach a shell are refused here.

Walks the syntax tree of every module of the package, the dataset scripts, the app and the benchmarks:
``torch.load`` needs ``weights_only=True``; ``np.load`` may not pass ``allow_pickle=True``; no ``pickle`` /
``dill`` / ``marshal`` imports; no ``shell=True``, ``os.system`` or ``os.popen``; no ``trust_remote_code=True``
(our own formats load through registered Auto classes); no ``yaml.load`` without a safe loader; no
``eval``/``exec``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *ROOT.glob("visage_hf/**/*.py"),
    *ROOT.glob("dataset_scripts/**/*.py"),
    *ROOT.glob("benchmarks/*.py"),
]
SOURCES.append(ROOT / "app.py")


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else "<expr>"
    return None


def unsafe_calls(source: str) -> list[str]:
    """What in ``source`` (Python text) breaks the rules above, as ``line: reason``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any(name.split(".")[0] in ("pickle", "dill", "marshal", "cloudpickle") for name in names):
                found.append(f"{node.lineno}: imports a pickle module")
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        reason = None
        if name.endswith("torch.load") and _keyword(node, "weights_only") is not True:
            reason = "torch.load without weights_only=True"
        elif name.endswith(("np.load", "numpy.load")) and _keyword(node, "allow_pickle") not in (None, False):
            reason = "np.load with allow_pickle"
        elif _keyword(node, "shell") not in (None, False):
            reason = "shell=True"
        elif name in ("os.system", "os.popen", "eval", "exec"):
            reason = f"{name}()"
        elif _keyword(node, "trust_remote_code") not in (None, False):
            reason = "trust_remote_code"
        elif name == "yaml.load" and "Safe" not in str(
            _name(node.args[1]) if len(node.args) > 1 else _keyword(node, "Loader")
        ):
            reason = "yaml.load without a safe loader"
        if reason:
            found.append(f"{node.lineno}: {reason}")
    return found


def test_the_checker_catches_each_rule():
    bad = """
import pickle
torch.load(path)
torch.load(path, weights_only=False)
np.load(path, allow_pickle=True)
subprocess.run(f"ffmpeg -i {path}", shell=True)
os.system("rm " + path)
AutoModel.from_pretrained(repo, trust_remote_code=True)
yaml.load(text)
"""
    assert len(unsafe_calls(bad)) == 8
    good = "torch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\nsubprocess.run(['ffmpeg', p])\n"
    assert unsafe_calls(good) == []


def test_no_unsafe_calls_in_the_code():
    problems = [
        f"{path.relative_to(ROOT)}:{line}" for path in SOURCES for line in unsafe_calls(path.read_text())
    ]
    assert not problems, "\n".join(problems)
