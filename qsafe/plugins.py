"""Plugin discovery: one generic registry over Python entry points.

Every extension point of qsafe is an entry-point group. qsafe's own built-ins are declared in its
``pyproject.toml`` under the same groups as third-party plugins, so there is one way in for both:

=====================  ====================================================  ==========================================
group                  what an entry point names                             interface (documented in docs/plugins.md)
=====================  ====================================================  ==========================================
``qsafe.signers``      a signature scheme (key generation, SPKI/PKCS#8,      :class:`qsafe.signers.SignatureScheme`
                       sign/verify with a context string)
``qsafe.verifiers``    an evidence verifier for one evidence ``kind``        :class:`qsafe.attestation.verifiers.EvidenceVerifier`
``qsafe.collectors``   an evidence collector                                 :class:`qsafe.attestation.collectors.Collector`
``qsafe.defenses``     a robust-aggregation defense (a Strategy class)        :class:`qsafe.federated.defenses.base.Strategy`
=====================  ====================================================  ==========================================

This module imports no capability: it finds, orders and imports entry points, and the capability that owns a
group checks what it loaded. A plugin cannot shadow a built-in of the same name (the built-in wins and the
plugin's entry is reported as shadowed), so installing a plugin never silently changes what a name means.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from qsafe.errors import MissingDependencyError, UsageError

__all__ = [
    "COLLECTORS_GROUP",
    "DEFENSES_GROUP",
    "GROUPS",
    "SIGNERS_GROUP",
    "VERIFIERS_GROUP",
    "Plugin",
    "Registry",
    "available_collectors",
    "load_collector",
    "registry",
]

SIGNERS_GROUP = "qsafe.signers"
VERIFIERS_GROUP = "qsafe.verifiers"
COLLECTORS_GROUP = "qsafe.collectors"
DEFENSES_GROUP = "qsafe.defenses"
GROUPS = (SIGNERS_GROUP, VERIFIERS_GROUP, COLLECTORS_GROUP, DEFENSES_GROUP)

# What each group's entries are, for messages ("no signature algorithm named ...").
_WHAT = {
    SIGNERS_GROUP: "signature algorithm",
    VERIFIERS_GROUP: "evidence verifier",
    COLLECTORS_GROUP: "evidence collector",
    DEFENSES_GROUP: "defense",
}
_HOST = "qsafe"


@dataclass(frozen=True)
class Plugin:
    """One registered entry.

    Attributes:
        group: the entry-point group; name: the entry's name (what users type);
        target: ``module:attribute``; distribution: the installed distribution that declares it.
    """

    group: str
    name: str
    target: str
    distribution: str

    @property
    def builtin(self) -> bool:
        """True for qsafe's own entries."""
        return self.distribution == _HOST


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else "?"


class Registry:
    """The entries of one entry-point group: names, where they come from, and their loaded objects.

    Discovery runs once per registry (call :meth:`refresh` after installing a plugin in the same process).
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self.what = _WHAT.get(group, "plugin")
        self._lock = threading.Lock()
        self._builtins: dict[str, Plugin] | None = None
        self._entries: dict[str, Plugin] | None = None
        self._shadowed: list[Plugin] = []
        self._loaded: dict[str, Any] = {}

    def refresh(self) -> None:
        """Forget what was discovered and loaded (the next call scans the entry points again)."""
        with self._lock:
            self._builtins, self._entries, self._shadowed, self._loaded = None, None, [], {}

    def _scan(self) -> dict[str, Plugin]:
        found = [Plugin(self.group, ep.name, ep.value, _distribution(ep))
                 for ep in metadata.entry_points(group=self.group) if _distribution(ep) != _HOST]
        # plugins by distribution name: the order (and who wins a clash between two plugins) is stable
        found.sort(key=lambda p: (p.distribution, p.name))
        entries: dict[str, Plugin] = {}
        shadowed: list[Plugin] = []
        for plugin in found:
            if plugin.name in entries:
                if entries[plugin.name].target != plugin.target:
                    shadowed.append(plugin)
                continue
            entries[plugin.name] = plugin
        self._shadowed = shadowed
        return entries

    def builtins(self) -> dict[str, Plugin]:
        """qsafe's own entries of this group, read from qsafe's metadata alone (no scan of other distributions).

        Raises:
            MissingDependencyError: qsafe is not installed, or its metadata predates this group (reinstall it).
        """
        with self._lock:
            if self._builtins is None:
                try:
                    dist = metadata.distribution(_HOST)
                except metadata.PackageNotFoundError:
                    dist = None
                eps = [] if dist is None else [ep for ep in dist.entry_points if ep.group == self.group]
                if not eps:
                    raise MissingDependencyError(
                        f"qsafe's built-in entries of {self.group} are not registered",
                        hint="qsafe must be installed for its plugins to be found: pip install -e . (or make test)")
                self._builtins = {ep.name: Plugin(self.group, ep.name, ep.value, _HOST) for ep in eps}
            return dict(self._builtins)

    def entries(self) -> dict[str, Plugin]:
        """Name -> :class:`Plugin`: built-ins first, then every installed plugin's.

        Raises:
            MissingDependencyError: qsafe's own entries are missing (see :meth:`builtins`).
        """
        builtins = self.builtins()
        with self._lock:
            if self._entries is None:
                entries = dict(builtins)
                for name, plugin in self._scan().items():
                    if name in entries and entries[name].target != plugin.target:
                        self._shadowed.append(plugin)
                    entries.setdefault(name, plugin)
                self._entries = entries
            return dict(self._entries)

    def shadowed(self) -> list[Plugin]:
        """Entries that lost a name clash (a plugin naming a built-in, or two plugins one name)."""
        self.entries()
        return list(self._shadowed)

    def names(self) -> list[str]:
        """Every registered name, built-ins first."""
        return list(self.entries())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.entries()

    def get(self, name: str) -> Plugin:
        """The entry called ``name``.

        Raises:
            UsageError: no entry of that name is installed (the message lists the installed ones).
        """
        builtins = self.builtins()
        if name in builtins:
            return builtins[name]
        entries = self.entries()
        if name not in entries:
            raise UsageError(f"no {self.what} named {name!r}; installed: {', '.join(entries) or 'none'}",
                             hint=f"a plugin adds one through the entry-point group {self.group} (see docs/plugins.md)")
        return entries[name]

    def load(self, name: str) -> Any:
        """Import and return the object the entry ``name`` points at (cached).

        Raises:
            UsageError: no such entry.
            MissingDependencyError: the entry's module cannot be imported (a dependency of its plugin is missing).
        """
        plugin = self.get(name)
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
        module_name, _, attr = plugin.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise MissingDependencyError(
                f"{self.what} {name!r} ({plugin.target}, from {plugin.distribution}) cannot be loaded: {exc}",
                hint=f"reinstall {plugin.distribution} with its dependencies") from exc
        with self._lock:
            self._loaded[name] = obj
        return obj

    def load_all(self) -> dict[str, Any]:
        """Every entry that loads, name -> object; entries whose plugin cannot be imported are left out."""
        out: dict[str, Any] = {}
        for name in self.entries():
            try:
                out[name] = self.load(name)
            except MissingDependencyError:
                continue
        return out


_REGISTRIES: dict[str, Registry] = {}
_REGISTRIES_LOCK = threading.Lock()


def registry(group: str) -> Registry:
    """The process-wide :class:`Registry` of ``group`` (one of :data:`GROUPS`, or a plugin's own group)."""
    with _REGISTRIES_LOCK:
        if group not in _REGISTRIES:
            _REGISTRIES[group] = Registry(group)
        return _REGISTRIES[group]


# --- collectors (kept here: the CLI and qsafe.attestation.collect call these two) ------------------------------
def available_collectors() -> dict[str, str]:
    """Name -> ``module:attribute`` of every collector: built-ins, then plugins (a plugin cannot shadow one)."""
    return {name: p.target for name, p in registry(COLLECTORS_GROUP).entries().items()}


def load_collector(name: str, **options: Any) -> Any:
    """Instantiate the collector registered as ``name``.

    Raises:
        MissingDependencyError: no collector of that name is installed, or its module cannot be imported.
        UsageError: the options do not fit the collector (e.g. ``replay`` without a path).
    """
    reg = registry(COLLECTORS_GROUP)
    if name not in reg:
        raise MissingDependencyError(
            f"no evidence collector named {name!r}; available: {', '.join(sorted(reg.names()))}",
            hint="install the plugin that provides it (entry-point group qsafe.collectors)",
        )
    cls = reg.load(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise UsageError(f"collector {name!r} cannot be used this way: {exc}") from exc
