"""The code a stage runs, read off the import graph: its files and their digest.

A stage's code dependencies (DVC `deps`, Snakemake `input.code`) and the key of every cache it
keeps outside the engines' outputs (the pretraining checkpoint, the score cache, ingest's work
folder) come from here, so they cannot drift apart or miss a module.

The rule, applied to the source text (nothing is imported):
- a module named in an `import` or `from ... import` statement, at module level or inside a
  function, counts with every `jtm` module it names in turn (a function's lazy import is code
  the function may run);
- a package that Python executes on the way to a module (`jtm/loading/__init__.py` for
  `jtm.loading.windows`) counts with its module-level imports only: its functions run only when
  named, and naming one is an explicit import.
Only modules inside `jtm/` count: third-party libraries are pinned by requirements.lock.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent  # paths are given relative to this folder: "jtm/train/pretrain.py"


@functools.cache
def module_files() -> dict[str, Path]:
    """Every module of the package: dotted name -> its file (a package's is its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _named(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    """The jtm modules an import statement names: `from a import b` names a.b when b is a
    module, and a itself only when some name is not (a then runs whole, as a package or module)."""
    modules = module_files()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:  # relative: from .x import y, inside `package`
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{parent}.{base}" if base else parent
        submodules = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
        names = submodules | ({base} if len(submodules) < len(node.names) else set())
    return {name for name in names if name in modules}


def _parse(module: str) -> tuple[ast.Module, str]:
    """`module`'s syntax tree and the package its relative imports start from."""
    path = module_files()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return ast.parse(path.read_text(), filename=str(path)), package


def _named_in(nodes: Iterable[ast.AST], package: str) -> set[str]:
    """The jtm modules the import statements among `nodes` name."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _named(node, package)
    return found


@functools.cache
def imports(module: str, module_level_only: bool = False) -> frozenset[str]:
    """The jtm modules `module`'s source names: everywhere, or in its module-level statements."""
    tree, package = _parse(module)
    nodes = _module_level(tree) if module_level_only else ast.walk(tree)
    return frozenset(_named_in(nodes, package) - {module})


def _module_level(tree: ast.Module) -> Iterable[ast.AST]:
    """The nodes that run when the module is imported: everything outside function bodies."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _parents(module: str) -> list[str]:
    """The packages Python executes before `module`: jtm, jtm.loading for jtm.loading.windows."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(roots: Iterable[str], imported: Iterable[str] = ()) -> list[str]:
    """Every jtm module that running `roots` (and importing `imported`: their module-level
    code only) can execute, sorted."""
    full, partial = set(), set()  # modules counted whole / their module-level code only
    todo = [(root, False) for root in roots] + [(name, True) for name in imported]
    while todo:
        module, level_only = todo.pop()
        if module in full or (level_only and module in partial):
            continue
        (partial if level_only else full).add(module)
        todo += [(name, False) for name in imports(module, level_only)]
        todo += [(parent, True) for parent in _parents(module)]
    return sorted(full | partial)


def function_imports(module: str, function: str) -> list[str]:
    """The jtm modules imported inside `function`'s body in `module`'s source (a stage's adapter)."""
    tree, package = _parse(module)
    found = next(
        (node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function), None
    )
    if found is None:
        raise LookupError(f"{module_files()[module]}: no top-level function {function!r}")
    return sorted(_named_in(ast.walk(found), package))


@functools.cache
def function_code(module: str, function: str) -> tuple[str, ...]:
    """The files that running top-level `function` of `module` can execute: the module's file
    and module-level imports, and every module the function's body imports, with theirs."""
    return files(closure(function_imports(module, function), imported=[module]))


def files(modules: Iterable[str]) -> tuple[str, ...]:
    """The modules' files relative to the repository, sorted: "jtm/train/pretrain.py", ..."""
    table = module_files()
    return tuple(sorted(table[name].relative_to(ROOT).as_posix() for name in modules))


def digest(paths: Iterable[str]) -> str:
    """SHA-256 over each file's relative path and bytes: what a cache is keyed on."""
    hasher = hashlib.sha256()
    for path in sorted(paths):
        data = (ROOT / path).read_bytes()
        hasher.update(f"{path}\0{len(data)}\0".encode())
        hasher.update(data)
    return hasher.hexdigest()


def code_digest(*roots: str) -> str:
    """The digest of everything `roots` can execute: a library function keys its cache on it."""
    return digest(files(closure(roots)))
