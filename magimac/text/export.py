"""A conversation as Markdown (the TUI's export)."""

from __future__ import annotations

from pathlib import Path

from magimac.core import staging
from magimac.text.history import ConversationInfo, StoredMessage
from magimac.text.tools import result_title

NOTES = {"cancelled": "stopped", "length": "stopped at the token limit", "error": "error", None: "interrupted"}


def conversation_markdown(conv: ConversationInfo, messages: list[StoredMessage],
                          model: str | None = None) -> str:
    """Markdown: ``# title``, then ``## You`` / ``## <model>`` sections; reasoning in a
    ``<details>`` block (folded on GitHub and in most viewers), attachments as list items.

    An answer is headed by the model that wrote it (``stats["model"]``, stored by the app), else
    by ``model`` (the conversation's), else "Magistral"."""
    out = [f"# {conv.title}", ""]
    previous = None
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            out += tool_markdown(m)
            previous = m.role
            continue
        author = (m.stats or {}).get("model") or model or "Magistral"
        if not (m.role == "assistant" and previous == "tool"):  # the answer goes on after its tool calls
            out += ["## You" if m.role == "user" else f"## {author}", ""]
        previous = m.role
        if m.role == "assistant" and m.reasoning:
            out += ["<details><summary>Reasoning</summary>", "", m.reasoning.strip(), "", "</details>", ""]
        out += [m.content.strip(), ""]
        for a in m.attachments:
            out += [f"- {a.kind}: `{a.path}`"]
        if m.attachments:
            out.append("")
        if m.role == "assistant" and m.finish_reason != "stop":
            out += [f"*({NOTES.get(m.finish_reason, m.finish_reason)})*", ""]
    return "\n".join(out).rstrip() + "\n"


def tool_markdown(m: StoredMessage) -> list[str]:
    """A tool row as a folded ``<details>`` block: ``Ran python · 0.4 s``, the code (or the
    arguments) and what came back, in fences."""
    s = m.stats or {}
    name = s.get("name") or "tool"
    title = result_title(name, m.content, s.get("seconds"))
    lang = "python" if name == "python" else "json"
    return ["<details><summary>" + title + "</summary>", "", f"```{lang}", (m.reasoning or "").strip(), "```", "",
            "```", m.content.strip(), "```", "", "</details>", ""]


def export_path(directory: Path, conv: ConversationInfo) -> Path:
    """``DIR/magimac-<title-slug>-<id>.md``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in conv.title.lower()).strip("-")
    slug = "-".join(filter(None, slug.split("-")))[:40] or "conversation"
    return directory / f"magimac-{slug}-{conv.id}.md"


def write_export(directory: Path, conv: ConversationInfo, messages: list[StoredMessage],
                 model: str | None = None) -> Path:
    """Write the Markdown (`conversation_markdown`; temp file, then rename into place);
    returns the path.

    Raises:
        magimac.core.staging.WriteError (an `OSError` too): ``directory`` is missing, a file,
            read-only or full; one line naming it, and nothing is left behind.
    """
    path = export_path(directory, conv)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(conversation_markdown(conv, messages, model), encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise staging.write_error(directory, e, "export to a folder you can write") from None
    return path
