"""Imports follow the data flow (data -> model -> train / export -> runtime -> bench / serve / experiments -> cli),
read from the source, so a wrong-way import fails here before it becomes a cycle or drags torch
into the inference path."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "capsdeploy"

# Stage -> the capsdeploy stages it must never import.
FORBIDDEN = {
    "data": {"model", "train", "export", "runtime", "bench", "serve", "cli", "experiments"},
    "model": {"train", "export", "runtime", "bench", "serve", "cli", "experiments"},
    "train": {"export", "runtime", "bench", "serve", "cli", "experiments"},
    "export": {"train", "runtime", "bench", "serve", "cli", "experiments"},
    "runtime": {"train", "bench", "serve", "cli", "experiments"},
    "bench": {"train", "serve", "cli", "experiments"},
    # Serve reads repositories and model files; `serve --model RUN` is exported by the CLI first.
    "serve": {"train", "export", "bench", "cli", "experiments"},
    # The paper's experiments sit on top: they run exported models through the runtime.
    "experiments": {"train", "bench", "serve", "cli"},
    # The model repository is a contract between export and serve, neutral like contract.py.
    "repository": {"model", "train", "export", "runtime", "bench", "serve", "cli", "experiments"},
}
# Packages the inference path must be able to import without: no module-level import of them.
TORCH_FREE = [
    "data",
    "contract.py",
    "errors.py",
    "fileio.py",
    "envinfo.py",
    "runtime/backend.py",
    "runtime/batcher.py",
    "runtime/compare.py",
    "runtime/ort_backend.py",
    "runtime/ov_backend.py",
    "runtime/engines.py",
    "runtime/tuned.py",
    "runtime/predict.py",
    "runtime/select.py",
    "bench",
    "serve",
    "repository",
    "cli",
    "export/__init__.py",
    "export/check.py",
    "export/trt_compat.py",
    "export/summary.py",
    "export/results.py",
    "__init__.py",
]


def _imports(path: Path, top_level_only: bool = False, root: Path = PKG) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = ["capsdeploy", *path.relative_to(root).parent.parts]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return found


def _files(rel: str) -> list[Path]:
    p = PKG / rel
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_no_stage_imports_a_later_one(stage):
    bad = []
    for f in _files(stage):
        for mod in _imports(f):
            parts = mod.split(".")
            if parts[0] == "capsdeploy" and len(parts) > 1 and parts[1] in FORBIDDEN[stage]:
                bad.append(f"{f.relative_to(PKG)} imports {mod}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("rel", TORCH_FREE)
def test_inference_modules_import_no_torch_at_module_level(rel):
    bad = [
        f"{f.relative_to(PKG)}: {m}"
        for f in _files(rel)
        for m in _imports(f, True)
        if m.split(".")[0] == "torch"
    ]
    assert not bad, bad


def test_the_checker_sees_wrong_way_imports(tmp_path):
    root = tmp_path / "capsdeploy"
    (root / "runtime").mkdir(parents=True)
    probe = root / "runtime" / "probe.py"
    probe.write_text("from ..train.loop import train\nimport torch\n\ndef f():\n    from .. import model\n")
    assert {"capsdeploy.train.loop", "capsdeploy.model"} <= _imports(probe, root=root)
    assert "torch" in _imports(probe, True, root=root) and "capsdeploy.model" not in _imports(
        probe, True, root
    )
