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
