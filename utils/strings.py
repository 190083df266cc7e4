"""Command-line value converters; the word "none" (any case) means None everywhere."""
import ast
from typing import Any, Callable, List, Optional


def _is_none(value: str) -> bool:
    return value.strip().lower() == "none"


def as_bool_or_none(value: str) -> Optional[bool]:
    """'none' -> None; yes/true/t/y/1 -> True; no/false/f/n/0 -> False."""
    lowered = value.strip().lower()
    if lowered == "none":
        return None
    if lowered in ("yes", "true", "t", "y", "1"):
        return True
    if lowered in ("no", "false", "f", "n", "0"):
        return False
    raise ValueError(f"expected a boolean (true/false/yes/no/1/0) or none, got {value!r}")


def as_string_or_none(value: str) -> Optional[str]:
    """'none' -> None, anything else unchanged."""
    return None if _is_none(value) else value


def as_int_or_none(value: str) -> Optional[int]:
    """'none' -> None, else int."""
    return None if _is_none(value) else int(value)


def as_float_or_none(value: str) -> Optional[float]:
    """'none' -> None, else float."""
    return None if _is_none(value) else float(value)


def as_dict_or_none(value: str) -> Any:
    """'none' -> None, else a Python literal (dict, list, number, ...)."""
    if _is_none(value):
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise ValueError(f"expected a Python literal such as {{'key': 1}}, got {value!r}") from None


def _list_converter(element: Callable[[str], Any], kind: str) -> Callable[[str], Optional[List[Any]]]:
    def convert(value: str) -> Optional[List[Any]]:
        text = value.strip()
        if _is_none(text):
            return None
        if text.startswith("[") != text.endswith("]"):
            raise ValueError(f"unbalanced brackets in {kind} list {value!r}; expected e.g. [1, 2]")
        if text.startswith("["):
            text = text[1:-1]
        if not text.strip():
            return []
        items = [item.strip() for item in text.split(",")]
        try:
            return [element(item) for item in items]
        except ValueError:
            raise ValueError(f"expected a comma-separated list of {kind} values, got {value!r}") from None

    convert.__name__ = f"as_{kind}list_or_none"
    return convert


def _bool_element(item: str) -> bool:
    result = as_bool_or_none(item)
    if result is None:
        raise ValueError(item)
    return result


as_intlist_or_none = _list_converter(int, "int")
as_floatlist_or_none = _list_converter(float, "float")
as_stringlist_or_none = _list_converter(str, "string")
as_booleanlist_or_none = _list_converter(_bool_element, "boolean")
