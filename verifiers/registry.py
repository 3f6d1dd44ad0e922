"""Verifiers by name: built-ins, :func:`register`-ed ones and third-party plug-ins.

A name maps either to a ready verifier or to a factory (a callable, typically a class or a
function, taking keyword arguments and returning a verifier)::

    register("shouting", verifier(lambda prompt, text: float(text.isupper()), name="shouting"))
    register("math_answer", math_answer)           # a factory: get("math_answer", reference=42)

Third-party packages register through the ``ponder.verifiers`` entry-point group; the entry
point's name is the verifier's name and its object is a verifier or a factory::

    [project.entry-points."ponder.verifiers"]
    toxicity = "my_package.verifiers:Toxicity"

Entry points are listed on the first lookup (:func:`get` or :func:`available`), not at import,
and a plug-in's module is imported only when its name is first requested. A plug-in that fails
to load gives a warning naming it; other names keep working. Names registered in-process win
over plug-ins of the same name.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import threading
import warnings
from typing import Any

from ponder.search.protocols import ConfigError
from ponder.search.protocols import Verifier as VerifierProtocol

__all__ = ["ENTRY_POINT_GROUP", "register", "get", "available", "refresh_plugins"]

ENTRY_POINT_GROUP = "ponder.verifiers"

_lock = threading.RLock()
_registry: dict[str, Any] = {}  # name -> verifier or factory
_from_plugins: set[str] = set()  # names in _registry that came from entry points
_plugins: dict[str, importlib.metadata.EntryPoint] | None = None  # listed, not yet loaded
_broken: dict[str, Exception] = {}  # plug-ins that failed to load


def _is_verifier(obj: Any) -> bool:
    return not isinstance(obj, type) and isinstance(obj, VerifierProtocol)


def _check_entry(name: Any, obj: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a verifier's registered name must be a non-empty string, got {name!r}")
    if not (_is_verifier(obj) or callable(obj)):
        raise ConfigError(f"register({name!r}, ...) needs a verifier or a factory returning one, got {obj!r}")


def register(name: str, factory_or_verifier: Any, *, if_exists: str = "error") -> Any:
    """Make a verifier (or a factory of verifiers) available as ``get(name)``.

    Args:
        name: the registry name.
        factory_or_verifier: a ready verifier (``get(name)`` returns it, and accepts no arguments)
            or a callable taking keyword arguments and returning a verifier. A plain scoring
            function ``fn(prompt, text)`` must be wrapped with ``ponder.verifier`` first, or it
            would be taken for a factory.
        if_exists: "error" (default) or "replace" when ``name`` is already registered.

    Returns:
        ``factory_or_verifier``, unchanged.
    """
    _check_entry(name, factory_or_verifier)
    if if_exists not in ("error", "replace"):
        raise ConfigError(f"unknown if_exists {if_exists!r}; valid choices: error, replace")
    with _lock:
        if name in _registry and if_exists == "error":
            raise ConfigError(f"a verifier named {name!r} is already registered; pass if_exists='replace' to replace it")
        _registry[name] = factory_or_verifier
        _from_plugins.discard(name)
    return factory_or_verifier


def _discover() -> dict[str, importlib.metadata.EntryPoint]:
    """List the group's entry points once (not importing them)."""
    global _plugins
    with _lock:
        if _plugins is not None:
            return _plugins
        _plugins = {}
        try:
            entries = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        except Exception as exc:  # noqa: BLE001 - broken metadata must not break built-ins
            warnings.warn(f"could not list the {ENTRY_POINT_GROUP!r} entry points: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=3)
            return _plugins
        for entry in entries:
            if entry.name in _registry:
                warnings.warn(
                    f"verifier plug-in {entry.name!r} ({entry.value}) is shadowed by a verifier already registered under that name",
                    RuntimeWarning,
                    stacklevel=3,
                )
            elif entry.name in _plugins and _plugins[entry.name].value != entry.value:
                warnings.warn(
                    f"two verifier plug-ins are named {entry.name!r} ({_plugins[entry.name].value} and {entry.value}); using the first",
                    RuntimeWarning,
                    stacklevel=3,
                )
            else:
                _plugins.setdefault(entry.name, entry)
        return _plugins


def _load_plugin(name: str) -> None:
    entry = _discover().pop(name)
    try:
        obj = entry.load()
        _check_entry(name, obj)
    except Exception as exc:  # noqa: BLE001 - a broken plug-in warns, it does not crash lookups
        _broken[name] = exc
        warnings.warn(
            f"verifier plug-in {name!r} ({entry.value}, entry-point group {ENTRY_POINT_GROUP!r}) failed to load "
            f"and is skipped: {type(exc).__name__}: {exc}",
            RuntimeWarning,
            stacklevel=4,
        )
        return
    _registry[name] = obj
    _from_plugins.add(name)


def available() -> list[str]:
    """Sorted names of all verifiers: built-in, registered and plug-ins (loaded or not)."""
    with _lock:
        return sorted(set(_registry) | set(_discover()))


def get(name: str, **kwargs: Any) -> Any:
    """The verifier registered as ``name``, built with ``kwargs`` if it is a factory.

    Args:
        name: a name from :func:`available`.
        **kwargs: arguments of the factory (e.g. ``get("regex", pattern=r"\\d+")``).

    Raises:
        ConfigError: unknown name (the message lists the valid ones), a plug-in that failed to
            load (its error chained), or arguments the factory does not accept.
    """
    with _lock:
        if name not in _registry and name in _discover():
            _load_plugin(name)
        if name not in _registry:
            valid = ", ".join(available())
            if name in _broken:
                raise ConfigError(f"verifier plug-in {name!r} failed to load ({_broken[name]}); valid names: {valid}") from _broken[name]
            raise ConfigError(f"unknown verifier {name!r}; valid names: {valid}")
        obj = _registry[name]

    if _is_verifier(obj):
        if kwargs:
            raise ConfigError(f"verifier {name!r} is registered ready-made and takes no arguments, got {', '.join(sorted(kwargs))}")
        return obj
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have no signature; let the call decide
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"bad arguments for verifier {name!r}: {exc}; its signature is {name}{signature}") from None
    made = obj(**kwargs)
    if not _is_verifier(made):
        raise ConfigError(f"the factory registered as {name!r} returned {made!r}, not a verifier (name, kind, score)")
    return made


def refresh_plugins() -> None:
    """Forget the listed and loaded plug-ins; the next lookup lists the entry points again.

    Useful after installing a plug-in package into a running interpreter (and in tests).
    """
    global _plugins
    with _lock:
        for name in _from_plugins:
            _registry.pop(name, None)
        _from_plugins.clear()
        _broken.clear()
        _plugins = None
