"""The house's layering, checked on the source: which package may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import qsafe

ROOT = Path(qsafe.__file__).parent


def _imported_modules(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(("qsafe", *path.relative_to(ROOT).with_suffix("").parts))
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: -node.level]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            found.append((node.lineno, base, tuple(a.name for a in node.names)))
    return found


def test_the_protocol_never_imports_the_simulation() -> None:
    """qsafe/federated (the protocol a deployment runs) does not depend on qsafe/federated_sim (the research
    harness); the simulation depends on the protocol."""
    offenders = [f"{path.relative_to(ROOT.parent)}:{line} imports {module}"
                 for path in sorted((ROOT / "federated").rglob("*.py"))
                 for line, module, names in _imported_modules(path)
                 if module == "qsafe.federated_sim" or module.startswith("qsafe.federated_sim.")
                 or (module == "qsafe" and "federated_sim" in names)]
    assert offenders == []
    sim_imports = {module for path in (ROOT / "federated_sim").rglob("*.py") for _, module, _ in _imported_modules(path)}
    assert any(m.startswith("qsafe.federated.") for m in sim_imports)  # the check above looks at the right tree


# Top-level house internals (qsafe._io, qsafe._json, qsafe._crypto, ...) serve every capability. Below that, a
# private name (a module or an attribute starting with "_") belongs to its package: only that package imports it.
def _private_owner(module: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(what, owner package) for each private part of ``from module import names`` below the top level."""
    parts = module.split(".")
    found = [(".".join(parts[: i + 1]), ".".join(parts[:i])) for i in range(2, len(parts)) if parts[i].startswith("_")]
    # a private attribute: of a top-level module (a capability such as qsafe.verifying), that module's own; of a
    # module inside a package, the package's
    owner = module if len(parts) == 2 else module.rsplit(".", 1)[0]
    found += [(f"{module}.{n}", owner) for n in names if n.startswith("_") and not n.startswith("__")]
    return found


def test_capabilities_do_not_import_each_others_private_modules() -> None:
    """encryption.py goes through _age's facade; robustness imports the simulation's public model; loading and the
    gate read call verifying's public helpers: a private module or name is imported only inside its own package."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = ".".join(("qsafe", *path.relative_to(ROOT).with_suffix("").parts))
        for line, module, names in _imported_modules(path):
            if not module.startswith("qsafe."):
                continue
            for what, owner in _private_owner(module, names):
                if not (importer == owner or importer.startswith(owner + ".")):
                    offenders.append(f"{path.relative_to(ROOT.parent)}:{line} imports {what} (private to {owner})")
    assert offenders == []
