"""The prose corpus of ``bench/train_prose_model.py``: docstrings and comments of CPython's
standard library (PSF-2.0), one document per module, split by module into training and
held-out text (the rule: `is_held_out`).  No PyTorch here, so the tests can check it."""

from __future__ import annotations

import ast
import hashlib
import io
import sys
import sysconfig
import tokenize
from pathlib import Path

import numpy as np

HELD_OUT_MOD = 10  # a module is held out when sha256(relative path) % 10 == 0


def stdlib_root() -> Path:
    """The running Python's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def is_held_out(rel: str) -> bool:
    """The split rule: ``rel`` (a module's path under the stdlib, ``/``-separated) is held out
    when the integer value of its SHA-256 is 0 mod `HELD_OUT_MOD`."""
    return int(hashlib.sha256(rel.encode("utf-8")).hexdigest(), 16) % HELD_OUT_MOD == 0


def module_paths(root: Path) -> list[Path]:
    """The stdlib's modules, sorted, without ``site-packages`` and test suites."""
    return [p for p in sorted(root.rglob("*.py"))
            if not any(part == "site-packages" or "test" in part for part in p.relative_to(root).parts)]


def module_text(src: str) -> str:
    """A module's prose: its docstrings and comment blocks in source order, blank-line
    separated ("" when it does not parse)."""
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return ""
    parts: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                parts.append((node.body[0].lineno, doc.strip()))
    block: list[str] = []
    start = last = 0
    try:
        for t in tokenize.generate_tokens(io.StringIO(src).readline):
            if t.type != tokenize.COMMENT or t.string.startswith(("#!", "# -*-")):
                continue
            line = t.string.lstrip("#").strip()
            if block and t.start[0] != last + 1:
                parts.append((start, "\n".join(block)))
                block = []
            if not block:
                start = t.start[0]
            last = t.start[0]
            if any(c.isalpha() for c in line):
                block.append(line)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    if block:
        parts.append((start, "\n".join(block)))
    return "\n\n".join(text for _, text in sorted(parts, key=lambda p: p[0]) if text)


def corpus(root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, held_out)``: lists of ``(relative path, prose)`` per module."""
    train_docs, held = [], []
    for p in module_paths(root):
        rel = p.relative_to(root).as_posix()
        text = module_text(p.read_text(encoding="utf-8", errors="replace"))
        if text:
            (held if is_held_out(rel) else train_docs).append((rel, text))
    return train_docs, held


def write_eval(held: list[tuple[str, str]], directory: Path, max_chars: int, root: Path) -> int:
    """Write held-out modules (path order) as ``stdlib-<module>.txt`` up to ``max_chars``
    characters in all, and ``SOURCES.md``; returns the characters written."""
    directory.mkdir(parents=True, exist_ok=True)
    total, names = 0, []
    for rel, text in held:
        if total >= max_chars:
            break
        text = text[: max_chars - total]
        name = "stdlib-" + rel.removesuffix(".py").replace("/", ".").replace("-", "_")
        (directory / f"{name}.txt").write_text(text, encoding="utf-8")
        total += len(text)
        names.append(rel)
    (directory / "SOURCES.md").write_text(
        f"Held-out evaluation text of the prose model (bench/train_prose_model.py): docstrings and comments of "
        f"CPython {sys.version.split()[0]}'s standard library ({root}), modules {', '.join(names)}. "
        f"Licence: PSF-2.0 (the Python Software Foundation License; {root / 'LICENSE.txt'}). "
        f"Split rule: a module is held out when sha256(relative path) % {HELD_OUT_MOD} == 0.\n", encoding="utf-8")
    return total


def token_stream(raw, docs: list[tuple[str, str]]) -> np.ndarray:
    """int64 ids of all documents, each ``<s>`` + its text (mistral-common's Tekken encoder)."""
    ids: list[int] = []
    for _, text in docs:
        ids += raw.encode(text, bos=True, eos=False)
    return np.asarray(ids, dtype=np.int64)
