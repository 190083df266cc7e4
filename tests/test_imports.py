"""The project's modules import each other without a cycle, counting imports under TYPE_CHECKING and in functions."""
import ast
import os
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIPPED = {".venv", ".git", "tests", "external_packages", "__pycache__"}


def project_modules(root: str = ROOT) -> Dict[str, str]:
    """Module name -> file of every project module (packages by their __init__.py), tests excluded."""
    modules = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED and not d.startswith("."))
        for name in files:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                if parts:
                    modules[".".join(parts)] = os.path.join(folder, name)
    return modules


def import_graph(modules: Dict[str, str]) -> Dict[str, Set[str]]:
    """Module -> the project modules it imports anywhere in its file (`from a import b` counts a.b if it is one)."""
    graph = {}
    for module, filename in modules.items():
        with open(filename, encoding="utf-8") as source:
            tree = ast.parse(source.read(), filename)
        package = module if filename.endswith("__init__.py") else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1] if package else []
                    base = ".".join([*anchor, *([base] if base else [])])
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = {target for target in targets if target in modules and target != module}
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted; sorted by first module."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    groups: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_find_cycles_sees_a_cycle_through_a_type_checking_import(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import A\n")
    (tmp_path / "c.py").write_text("import a\n")
    assert find_cycles(import_graph(project_modules(str(tmp_path)))) == [["a", "b"]]


def test_the_project_has_no_import_cycle():
    modules = project_modules()
    assert {"main", "runtime", "hooks", "callbacks", "utils.checkpoints"} <= set(modules)
    assert find_cycles(import_graph(modules)) == []
