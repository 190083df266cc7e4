"""The original framework's JSON layout for args.json and checkpoint statistics."""
from typing import Any, Dict


def encode(value: Any) -> str:
    """Encode one value: none/true/false strings become JSON literals, tuples become arrays."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("none", "false", "true"):
            return {"none": "null", "false": "false", "true": "true"}[lowered]
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(encode(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{encode(str(key))}: {encode(value[key])}" for key in sorted(value, key=str))
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else "null"
    return encode(str(value))


def dumps(dictionary: Dict[str, Any], sort_keys: bool = True) -> str:
    """`{`, one `  "key": value` line per entry joined by `,`, `}`."""
    keys = sorted(dictionary) if sort_keys else list(dictionary)
    lines = [f'  "{key}": {encode(dictionary[key])}' for key in keys]
    return "{\n" + ",\n".join(lines) + "\n}"


def write(filename: str, dictionary: Dict[str, Any], sort_keys: bool = True) -> None:
    """Write `dictionary` to `filename` in that layout."""
    with open(filename, "w", encoding="utf-8") as handle:
        handle.write(dumps(dictionary, sort_keys=sort_keys) + "\n")
