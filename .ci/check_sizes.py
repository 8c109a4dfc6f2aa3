"""Fail when a source module is over 400 lines or a function over 80 (issue 25): small modules, short functions.

Checks the installed packages' sources (dlpipe/, pipelines/, models/, data/, serving/); tests, benchmarks and
generated code (the flatc-generated metadata schema) are exempt. Prints one line per offender.
Run: python .ci/check_sizes.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
PACKAGES = ("dlpipe", "pipelines", "models", "data", "serving")
GENERATED = ("_metadata_schema_py_generated.py",)


def offenders(root: Path) -> list[str]:
    """'path: what is too long' for every module and function over its limit."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if path.name in GENERATED:
                continue
            text = path.read_text(encoding="utf-8")
            relative = path.relative_to(root)
            lines = len(text.splitlines())
            if lines > MAX_MODULE_LINES:
                found.append(f"{relative}: {lines} lines (max {MAX_MODULE_LINES})")
            for node in ast.walk(ast.parse(text, str(relative))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(f"{relative}:{node.lineno}: function {node.name} is {length} lines "
                                     f"(max {MAX_FUNCTION_LINES})")
    return found


def main() -> int:
    found = offenders(Path(__file__).resolve().parent.parent)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} over the size limits: split them (small modules with one job, short functions)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
