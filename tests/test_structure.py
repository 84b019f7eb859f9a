"""The library's shape: short functions, and modules whose imports point one way (no cycles)."""
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "locality_lib"
MAX_LINES = 60


def _modules() -> dict[str, ast.Module]:
    """``{module name: parsed source}`` for every ``locality_lib/*.py``."""
    return {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(LIB.glob("*.py"))}


def test_no_function_is_longer_than_sixty_lines():
    """Every function and method, from its ``def`` line to its last line (docstring included)."""
    long = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"locality_lib/{name}.py:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions longer than {MAX_LINES} lines (split them into named phases): {long}"


def _imported(tree: ast.Module, modules) -> set[str]:
    """The ``locality_lib`` modules that ``tree`` imports, at the top or inside a function:
    ``from .x import ...``, ``from . import x``, ``from locality_lib(.x) import ...``, ``import locality_lib.x``;
    a name of the package that is not a module counts as ``__init__``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level > 1 or (node.level == 0 and not (node.module or "").startswith("locality_lib")):
                continue
            module = node.module or "" if node.level else (node.module or "")[len("locality_lib"):].lstrip(".")
            if module:
                found.add(module.split(".")[0])
            else:  # from . import x / from locality_lib import x
                found |= {a.name if a.name in modules else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "locality_lib":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = "done"
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    tree = ast.parse("from .x import y\ndef f():\n    from . import z, w\n    import locality_lib.v\n"
                     "from locality_lib import u\nimport numpy\n")
    assert _imported(tree, {"x", "z", "v", "u"}) == {"x", "z", "__init__", "v", "u"}


def test_no_module_imports_one_that_imports_it_back():
    """The import graph of ``locality_lib`` (top-level and function-level imports) has no cycle."""
    modules = _modules()
    graph = {name: _imported(tree, modules) - {name} for name, tree in modules.items()}
    assert _cycle(graph) is None, f"import cycle in locality_lib: {' -> '.join(_cycle(graph))}"


def test_networks_import_nothing_of_the_denoisers():
    """unet, dit and cnn are plain networks: the parameterization (epsilon) and everything above stay out."""
    modules = _modules()
    allowed = {"unet", "schedule", "_checks"}
    for net in ("unet", "dit", "cnn"):
        assert _imported(modules[net], modules) <= allowed, f"{net}.py imports {_imported(modules[net], modules)}"
