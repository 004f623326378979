"""The package's layering: lower layers never import higher ones, and no import cycle.

Every `import` statement is read from the source (module level and inside
functions alike: a lazy import is still a dependency), so the test needs no
TensorFlow and fails on the first upward import or cycle anyone adds.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer (without cycles) and any
# layer below it. The root package `kerascnn` (the lazy public API) is exempt.
LAYERS = [
    ("vocabulary", ["kerascnn._lazy", "kerascnn.errors", "kerascnn.recipes", "kerascnn.recipe_results",
                    "kerascnn.record", "kerascnn.config", "kerascnn.registry", "kerascnn.faults",
                    "kerascnn.validation",
                    # How any file is read back (one DataError line), which RunConfig.read uses too.
                    "kerascnn.storage.readback"]),
    ("storage", ["kerascnn.storage"]),
    ("layers", ["kerascnn.layers"]),
    # kerascnn.testing puts built models in states that tests and benchmarks need.
    ("models", ["kerascnn.models", "kerascnn.testing"]),
    ("data", ["kerascnn.data"]),
    ("runtime", ["kerascnn.runtime"]),
    ("weights", ["kerascnn.weights"]),
    ("serving", ["kerascnn.serving"]),
    ("analysis", ["kerascnn.analysis"]),
    ("training", ["kerascnn.training"]),
    ("tuning", ["tuning"]),
    ("studies", ["kerascnn.studies"]),
    ("cli", ["kerascnn.cli", "tuning.cli"]),
]


def module_files():
    files = {}
    for path in sorted([*ROOT.glob("kerascnn/**/*.py"), *ROOT.glob("tuning/**/*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def imports_of(name, path, modules):
    """The project modules `name` imports (resolving `from package import submodule`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        # `from kerascnn.x import y` depends on the module kerascnn.x.y when there is one, else on kerascnn.x.
        submodules = [t for t in targets[1:] if t in modules] if isinstance(node, ast.ImportFrom) else []
        found.update(t for t in (submodules or targets) if t in modules and t != name)
    return found


def layer_of(name):
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


@pytest.fixture(scope="module")
def graph():
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    missing = [name for name in graph if name != "kerascnn" and layer_of(name) is None]
    assert not missing, f"modules outside every layer of tests/test_layout.py: {missing}"


def upward_imports(graph):
    return [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in graph.items()
        if name != "kerascnn"
        for target in targets
        if target != "kerascnn" and layer_of(target) > layer_of(name)
    ]


def find_cycles(graph):
    edges = {name: {t for t in targets if t != "kerascnn"} for name, targets in graph.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_no_layer_imports_a_higher_one(graph):
    upward = upward_imports(graph)
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_find_a_planted_upward_import_and_cycle(tmp_path):
    """The checks above can fail: a lazy upward import and the cycle it closes are found."""
    pkg = tmp_path / "kerascnn"
    (pkg / "storage").mkdir(parents=True)
    (pkg / "training").mkdir()
    (pkg / "storage" / "a.py").write_text("def f():\n    from kerascnn.training import b\n")
    (pkg / "training" / "b.py").write_text("from kerascnn.storage import a\n")
    modules = {"kerascnn.storage.a": pkg / "storage" / "a.py", "kerascnn.training.b": pkg / "training" / "b.py"}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph == {"kerascnn.storage.a": {"kerascnn.training.b"}, "kerascnn.training.b": {"kerascnn.storage.a"}}
    assert upward_imports(graph) == ["kerascnn.storage.a (storage) imports kerascnn.training.b (training)"]
    assert find_cycles(graph) == [["kerascnn.storage.a", "kerascnn.training.b", "kerascnn.storage.a"]]


def test_public_api_after_a_plain_import():
    """`import kerascnn` gives the API and the subpackages, loading TensorFlow only when used."""
    code = (
        "import sys, kerascnn\n"
        "assert 'tensorflow' not in sys.modules, 'import kerascnn loaded TensorFlow'\n"
        "from kerascnn.cli.app import build_parser; build_parser()\n"
        "assert 'tensorflow' not in sys.modules, 'building the parser loaded TensorFlow'\n"
        "assert kerascnn.layers.LocalResponseNormalization.__name__ == 'LocalResponseNormalization'\n"
        "assert callable(kerascnn.data.fit_pca) and callable(kerascnn.data.open_source)\n"
        "assert 'alexnet_cifar' in kerascnn.models.list_models()\n"
        "assert callable(kerascnn.analysis.profile_model) and callable(kerascnn.analysis.receptive_fields)\n"
        "assert callable(kerascnn.tuning.run_search)\n"
        "for name in ('fit', 'evaluate', 'export_model', 'load_predictor', 'create_model'):\n"
        "    assert callable(getattr(kerascnn, name)) and not isinstance(getattr(kerascnn, name), type(sys)), name\n"
        "assert set(kerascnn.__all__) <= set(dir(kerascnn))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
