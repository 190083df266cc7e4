"""A small typed name -> class registry, one per package (models, datasets, losses, ...), and the discovery
that imports every module of such a package so that a file dropped into it registers its classes."""
import importlib
import os
import pkgutil
from typing import Callable, Dict, Generic, Iterable, Iterator, List, Optional, TypeVar, Union

T = TypeVar("T")

class Registry(Generic[T]):
    """Maps registered names to objects; duplicate and unknown names raise errors."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._objects: Dict[str, T] = {}

    @property
    def name(self) -> str:
        """What is registered here, e.g. 'model'."""
        return self._name

    def register(self, name: Optional[str] = None, obj: Optional[T] = None) -> Union[T, Callable[[T], T]]:
        """Register `obj` under `name` (default: its __name__); without `obj`, return a decorator."""
        if obj is not None:
            self._add(name or obj.__name__, obj)
            return obj

        def decorator(cls: T) -> T:
            self._add(name or cls.__name__, cls)
            return cls

        return decorator

    def _add(self, name: str, obj: T) -> None:
        if name in self._objects:
            raise KeyError(f"{self._name} '{name}' is already registered (by {self._objects[name]!r})")
        self._objects[name] = obj

    def get(self, name: str) -> T:
        """The object registered as `name`; an unknown name raises a KeyError listing the known ones."""
        try:
            return self._objects[name]
        except KeyError:
            raise KeyError(f"unknown {self._name} '{name}'; registered: {', '.join(self.names())}") from None

    def unregister(self, name: str) -> T:
        """Remove `name` and return what it named (tests and notebooks that register classes of their own)."""
        obj = self.get(name)
        del self._objects[name]
        return obj

    def names(self) -> List[str]:
        """Registered names in alphabetical order."""
        return sorted(self._objects)

    def __contains__(self, name: object) -> bool:
        return name in self._objects

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._objects)

    def __repr__(self) -> str:
        return f"Registry({self._name!r}: {', '.join(self.names())})"


def import_package_modules(package: str, path: Iterable[str]) -> List[str]:
    """Import every module of a package folder (`__path__`) in name order; returns their names.

    Private modules (a leading '_') are skipped. A module that fails to import stops the import with an
    ImportError naming its file, chained from the original error: a broken drop-in never goes unnoticed.
    """
    names = sorted((info.name, info.ispkg) for info in pkgutil.iter_modules(list(path))
                   if not info.name.startswith("_"))
    for name, is_package in names:
        try:
            importlib.import_module(f"{package}.{name}")
        except Exception as error:  # noqa: BLE001 -- re-raised, naming the module at fault
            where = os.path.join(package, name) + ("/" if is_package else ".py")
            raise ImportError(f"cannot import {where}: {type(error).__name__}: {error}") from error
    return [name for name, _ in names]
