"""A small typed name -> class registry, one per package (models, datasets, losses, ...)."""
from typing import Callable, Dict, Generic, Iterator, List, Optional, TypeVar, Union

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
