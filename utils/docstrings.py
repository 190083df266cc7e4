"""Parameter descriptions read from docstrings, for the command line's --help.

Two styles are read: Google's "Args:" section (also "Arguments:", "Parameters:", "Keyword Args:") and Sphinx's
":param name: text" lines. torch's optimizers and LR schedulers use the first, so their flags get a description
too. A description is shortened to its first sentence, without reST markup and without "(default: ...)", because
the help shows the flag's own default.
"""
import inspect
import re
from typing import Dict, List, Optional

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ENTRY = re.compile(r"^(\s*):param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_ROLE = re.compile(r":\w+:`~?(?:[\w.]*\.)?([^`<]+?)(?:\s*<[^>]*>)?`")  # :class:`~torch.optim.Adam` -> Adam
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_entries(lines: List[str]) -> Dict[str, List[str]]:
    entries: Dict[str, List[str]] = {}
    section: Optional[int] = None  # indent of the section header while inside a section
    entry_indent: Optional[int] = None
    current: Optional[List[str]] = None
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section, entry_indent, current = len(header.group(1)), None, None
            continue
        if section is None or not line.strip():
            continue
        if _indent(line) <= section:  # dedented: the section ended
            section, current = None, None
            continue
        if entry_indent is None:
            entry_indent = _indent(line)
        match = _GOOGLE_ENTRY.match(line.strip()) if _indent(line) == entry_indent else None
        if match:
            current = entries.setdefault(match.group(1), [])
            current.append(match.group(3))
        elif current is not None and _indent(line) > entry_indent:
            current.append(line.strip())
    return entries


def _sphinx_entries(lines: List[str]) -> Dict[str, List[str]]:
    entries: Dict[str, List[str]] = {}
    current: Optional[List[str]] = None
    indent = 0
    for line in lines:
        match = _SPHINX_ENTRY.match(line)
        if match:
            indent = len(match.group(1))
            current = entries.setdefault(match.group(2), [])
            current.append(match.group(3))
        elif current is not None and line.strip() and _indent(line) > indent and not line.strip().startswith(":"):
            current.append(line.strip())
        else:
            current = None
    return entries


def _without_defaults(text: str) -> str:
    """The text without "(default: ...)" parentheticals (nested parentheses included) and "Default: ..." tails."""
    while True:
        start = text.lower().find("(default")
        if start < 0:
            break
        depth, end = 0, len(text)
        for index in range(start, len(text)):
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            if depth == 0:
                end = index + 1
                break
        text = text[:start].rstrip() + text[end:]
    return re.sub(r"\s*\bDefaults?\s*(:|is|to)\s.*$", "", text)


def short_description(text: str) -> str:
    """First sentence of a parameter description, as plain text."""
    text = " ".join(text.split())
    text = _ROLE.sub(r"\1", text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`]*)`_?", r"\1", text)
    text = _without_defaults(text)
    return _SENTENCE_END.split(text, maxsplit=1)[0].strip().rstrip(".").strip()


def parse_parameters(doc: Optional[str]) -> Dict[str, str]:
    """Parameter name -> short description, from one docstring (Google "Args:" section or ":param x:" lines)."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    if lines and _SECTION.match(lines[0]):  # '"""Args:' on the first line: cleandoc dedented its entries to it
        lines = lines[:1] + ["    " + line for line in lines[1:]]
    entries = _sphinx_entries(lines)
    for name, text in _google_entries(lines).items():
        entries.setdefault(name, text)
    descriptions = {name: short_description(" ".join(text)) for name, text in entries.items()}
    return {name: text for name, text in descriptions.items() if text}


def parameter_descriptions(cls: type) -> Dict[str, str]:
    """Descriptions of the constructor parameters of `cls`: from its docstring and its __init__'s, then from its
    base classes' (a subclass that forwards **kwargs documents only what it adds)."""
    found: Dict[str, str] = {}
    for klass in inspect.getmro(cls):
        if klass is object:
            break
        init = klass.__dict__.get("__init__")
        for doc in (klass.__dict__.get("__doc__"), getattr(init, "__doc__", None)):
            for name, text in parse_parameters(doc).items():
                found.setdefault(name, text)
    return found
