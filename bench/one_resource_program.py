"""The yardstick for program evaluation: the same imports as the lab's program, then one resource.

"The same imports" is every module the lab's program had loaded by its end, listed in the file
named by ``K8S_LAB_BENCH_MODULES`` (``bench/run.py`` records it from one run of the stack). The
plain import lines of ``__main__.py`` are not enough: pulumi-kubernetes loads its API groups
lazily, on first use (``k8s.core.v1`` alone takes most of a second), so only a module list taken
after a run puts the yardstick's import cost level with the program's.
"""

import ast
import importlib
import os
from pathlib import Path

import pulumi

main = Path(__file__).resolve().parent.parent / "__main__.py"
imports = [node for node in ast.walk(ast.parse(main.read_text())) if isinstance(node, (ast.Import, ast.ImportFrom))]
exec(compile(ast.Module(body=imports, type_ignores=[]), str(main), "exec"), {})
listing = os.environ.get("K8S_LAB_BENCH_MODULES")
for module in Path(listing).read_text().split() if listing else ():
    importlib.import_module(module)

pulumi.CustomResource("k8s-lab:bench:One", "one", {})
