"""The import graph of src/sidrec, built from the source: no cycle, and no module imports a layer above it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a module may import its own layer and the layers below it
LAYERS = [
    {"sidrec", "sidrec.errors", "sidrec.utils"},
    {"sidrec.data"},
    # token semantics as data (the semantics.json format, the offline tfidf teacher, clusters)
    {"sidrec.sids", "sidrec.evaluation", "sidrec.semantics.format", "sidrec.semantics.tfidf",
     "sidrec.semantics.clusters"},
    {"sidrec.models", "sidrec.training"},           # the classic baselines
    {"sidrec.llm"},                                  # the generative core: knows no method
    {"sidrec.methods", "sidrec.semantics"},          # the registered methods; the teachers that run an LM
    {"sidrec.pipelines", "sidrec.reporting", "sidrec.serving"},
    {"sidrec.cli", "sidrec.testing", "sidrec.__main__"},
]
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "sidrec").rglob("*.py"):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        out[name] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """module → the sidrec modules it imports (anywhere in the file, lazy imports included; a
    module's own ancestor packages are left out: Python runs them first anyway)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("sidrec")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = parts[: len(parts) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if not module.startswith("sidrec"):
                    continue
                subs = {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods}
                deps |= subs
                if len(subs) < len(node.names):
                    deps.add(module)
        graph[name] = {d for d in deps if d in mods and d != name and not name.startswith(d + ".")}
    return graph


def layer_of(module: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_no_module_imports_a_layer_above_it():
    upward = sorted((a, b) for a, deps in import_graph().items() for b in deps
                    if layer_of(b) > layer_of(a) and (a, b) not in ALLOWED_UPWARD)
    assert upward == []


def test_the_checker_sees_a_planted_cycle_and_an_upward_import():
    graph = {"sidrec.a": {"sidrec.b"}, "sidrec.b": {"sidrec.a"}, "sidrec.c": set()}
    assert cycles(graph) == [["sidrec.a", "sidrec.b"]]
    assert layer_of("sidrec.cli.main") > layer_of("sidrec.llm.trainer") > layer_of("sidrec.data.dataset")


def test_the_core_imports_no_method():
    graph = import_graph()
    into_methods = sorted((a, b) for a, deps in graph.items() if a.startswith("sidrec.llm")
                          for b in deps if b.startswith("sidrec.methods"))
    assert into_methods == []


def test_every_method_folder_is_registered():
    from sidrec.methods.registry import METHODS

    folders = {p.name for p in (SRC / "sidrec" / "methods").iterdir() if (p / "__init__.py").is_file()}
    registered = {type(m.trainer).__module__ and m.trainer.__module__.split(".")[2] for m in METHODS.values()
                  if m.trainer.__module__.startswith("sidrec.methods.")}
    assert folders == registered
    for m in METHODS.values():
        assert m.config.model_fields["method"].default == m.name or m.name in ("sdpo",)
        assert m.section is None or m.section in m.config.model_fields
