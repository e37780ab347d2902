"""`magimac chat`: one turn, headless, for scripts and pipes.

The answer goes to stdout; the reasoning goes to stderr (dimmed when stderr is a terminal
and ``NO_COLOR`` is unset; ``--hide-reasoning`` drops it).  ``--json`` prints JSON Lines on
stdout instead: ``{"type": "reasoning"|"answer", "text"}``, ``{"type": "stats", ...Stats}``,
``{"type": "done", "finish_reason", "error"?}`` (always the last line, also when the
turn never starts); with ``--tools`` (`magimac.cli.chat_tools`) also ``{"type": "tool_call",
"id", "name", "arguments", "error"?}`` and ``{"type": "tool_result", "id", "name", "output" |
"error", "seconds"}``, and a ``stats`` line per engine round (the last one before ``done``).  ``--library NAME`` searches a library
(`magimac.session.library`) and sends its best passages, numbered for citation; ``--file PATH``
attaches a document
(`magimac.text.retrieval.attach_for_engine`); the passages sent are reported first: one line on
stderr, or a ``{"type": "documents", ...}`` line (`retrieval.context_report`) with ``--json``.

An online model (`magimac models` lists them) needs ``--online``: without it nothing is sent
and the command stops with a one-line reason. Its rate-limit waits are reported (a line on
stderr, or ``{"type": "retry", "wait_s", "reason"}``).

What it reads has limits (`magimac.core.files`): the prompt on stdin, ``--system-file`` and
``--conversation`` at most 16 MB (`MAX_TEXT_BYTES`) of UTF-8 text from regular files, each refused in
one line.  On a terminal the text printed shows its control characters instead of running them
(`magimac.text.controls`); a call of a tool the turn did not offer is one notice line.

Exit status: 0 when the turn stops or hits the token limit, 1 on an error (printed as
``magimac: <message>``), 130 when interrupted (Ctrl-C cancels the turn; what was generated is
kept).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.files import read_stdin, read_text_file
from magimac.core.conversation import ConversationError, Message, conversation_from_json

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `magimac chat` (see the module doc)."""
    p.add_argument("prompt", nargs="?", help="the message; read from stdin when omitted and stdin is not a terminal")
    p.add_argument("--model", help="registry name, hub id or converted model directory (default: the default model)")
    p.add_argument("--json", action="store_true", help="print JSON Lines (reasoning, answer, stats, done)")
    p.add_argument("--online", action="store_true",
                   help="confirm that the conversation may go to Mistral's API (needed for an online --model)")
    p.add_argument("--hide-reasoning", action="store_true", help="do not print the reasoning")
    p.add_argument("--conversation", metavar="FILE", type=Path,
                   help="continue a conversation: a JSON list of {role, content, reasoning?, images?}")
    p.add_argument("--image", metavar="PATH", action="append", default=[], help="attach an image (repeatable)")
    p.add_argument("--file", metavar="PATH", action="append", default=[],
                   help="attach a document: text, Markdown, code, CSV, HTML, PDF, DOCX (repeatable; read locally)")
    p.add_argument("--library", metavar="NAME", action="append", default=[],
                   help="search this library (magimac library add) and send its best passages (repeatable)")
    sys_group = p.add_mutually_exclusive_group()
    sys_group.add_argument("--system", metavar="TEXT", help="use this system prompt instead of the model's")
    sys_group.add_argument("--system-file", metavar="FILE", type=Path, help="read the system prompt from FILE")
    sys_group.add_argument("--no-system-prompt", action="store_true", help="send no system prompt")
    p.add_argument("--system-alone", action="store_true",
                   help="send --system/--system-file text alone, without the model's reasoning instructions "
                        "(by default they come first, so the model still reasons)")
    from magimac.core.settings import SETTINGS

    for row in SETTINGS.values():  # checked in `build_settings`: a wrong value is one line, not usage
        p.add_argument(row.flag, metavar=row.unit.upper() or "N" if row.whole else "X",
                       help=f"{row.about}: {row.range} (default: {row.unset})")
    p.add_argument("--keep-reasoning", action="store_true", help="keep earlier turns' reasoning in the prompt")
    p.add_argument("--context-length", type=int, metavar="TOKENS", help="context limit (default: the model's)")
    p.add_argument("--kv-bits", type=int, choices=(4, 8), help="quantize the KV cache")
    p.add_argument("--force", action="store_true", help="load even if the model looks too large for this machine")
    p.add_argument("--server", metavar="URL",
                   help="use a running `magimac serve` as the model (default: yours on 127.0.0.1:8080 "
                        "when it serves the model asked for and proves you started it)")
    p.add_argument("--no-server", action="store_true", help="load the model here even if a server has it")
    p.add_argument("--stats", action="store_true", help="print the turn's numbers to stderr")
    p.add_argument("--no-disk-cache", action="store_true",
                   help="neither read nor save the prompt cache on disk (`magimac cache`) for this run")
    p.add_argument("--show-prompt", action="store_true",
                   help="print the prompt's token ids (JSON) and its text, and generate nothing")
    from magimac.cli.chat_tools import add_arguments as tool_arguments

    tool_arguments(p)


def _read_conversation(path: Path) -> list[Message]:
    """The messages of a ``--conversation`` file (at most `MAX_TEXT_BYTES`).

    Raises:
        InputError: not a readable regular UTF-8 file under the cap.
        ConversationError: not valid JSON (nested too deep included), not a list of messages.
    """
    text = read_text_file(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConversationError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    except RecursionError:
        raise ConversationError(f"{path}: not a valid conversation (JSON nested too deep)") from None
    return conversation_from_json(data, str(path))


def build_messages(args: argparse.Namespace, stdin=None) -> list[Message]:
    """The conversation for this turn: ``--conversation`` plus the prompt and ``--image``s.

    Raises:
        MagimacError / ConversationError: unreadable files, missing images, no prompt.
    """
    stdin = sys.stdin if stdin is None else stdin
    messages = _read_conversation(args.conversation) if args.conversation else []
    text = args.prompt
    if text is None and not (messages and messages[-1].role in ("user", "tool")) and not stdin.isatty():
        text = read_stdin(stdin).rstrip("\n")  # the newline `echo` adds is not part of the message
        if not text.strip():
            text = None
    for img in args.image:
        if not Path(img).is_file():
            raise MagimacError(f"image {img}: no such file")
    files = [str(Path(f).expanduser().resolve()) for f in getattr(args, "file", [])]
    if text is not None and not text.strip() and not args.image and not files:
        raise MagimacError("empty prompt: type a message, or attach --image / --file")
    if text is not None:
        messages.append(Message("user", text, images=list(args.image), documents=files))
    elif messages and messages[-1].role == "user":
        messages[-1].images = [*messages[-1].images, *args.image]
        messages[-1].documents = [*messages[-1].documents, *files]
    elif messages and messages[-1].role == "tool" and not (args.image or files):
        pass  # the model continues its turn after the tool results
    else:
        raise MagimacError("no prompt: give it as an argument, on stdin, or end --conversation with a user message")
    return messages


def _system_prompt(args: argparse.Namespace):
    """The system prompt setting from ``--system`` / ``--system-file`` / ``--no-system-prompt``."""
    from magimac.core.settings import DEFAULT

    if args.no_system_prompt:
        return None
    if args.system is not None:
        return args.system
    if args.system_file is not None:
        return read_text_file(args.system_file)
    return DEFAULT


def build_settings(args: argparse.Namespace):
    """GenerationSettings from the options, each number read and checked by its row of the one
    settings table (`magimac.core.settings.SETTINGS`) before anything is loaded.

    Raises:
        MagimacError: a value out of range, named with its option (``--top-p must be a number in
            (0, 1], got 2``).
    """
    from magimac.core.settings import SETTINGS, GenerationSettings

    if args.context_length is not None and args.context_length < 1:
        raise MagimacError(f"--context-length must be a positive number of tokens, got {args.context_length}")
    numbers = {name: row.parse(getattr(args, name)) for name, row in SETTINGS.items()
               if getattr(args, name) is not None}
    return GenerationSettings(**numbers, keep_reasoning=args.keep_reasoning, system_prompt=_system_prompt(args),
                              reasoning_instructions=not args.system_alone)


def _show_prompt(run, as_json: bool) -> int:
    """Print the prompt ``run`` would send (documents included) and generate nothing."""
    from magimac.cli.chat_output import for_terminal, json_line

    documents = run.prepare()
    p = run.session.encode(run.messages, run.settings)
    if as_json:
        if documents is not None:
            json_line(documents.report)
        json_line({"type": "prompt", "tokens": p.tokens, "text": p.text})
    else:
        if documents is not None:
            print(for_terminal(sys.stderr)(documents.summary), file=sys.stderr)
        if run.session.choice.online is None:  # an online model's prompt is its request (JSON)
            print(json.dumps(p.tokens))
        print(for_terminal(sys.stdout)(p.text))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one turn; returns the exit status.

    With ``--json`` the stream always ends with one ``done`` line: a mistake found before the
    turn (bad file, model, option) writes ``{"type": "done", "finish_reason": "error",
    "error"}`` before it is raised for `magimac.cli.main` to print; Ctrl-C before the turn writes
    ``finish_reason`` ``"cancelled"``.
    """
    if not args.json:
        return _run(args)
    from magimac.cli.chat_output import json_line

    try:
        return _run(args)
    except MagimacError as e:
        json_line({"type": "done", "finish_reason": "error", "error": str(e)})
        raise
    except KeyboardInterrupt:
        json_line({"type": "done", "finish_reason": "cancelled"})
        raise


def _run(args: argparse.Namespace) -> int:
    from magimac.cli.chat_tools import tool_use

    messages = build_messages(args)
    settings = build_settings(args)
    tools = tool_use(args)
    session = _open(args)
    try:
        run_ = session.turn(messages, settings, tools, libraries=_libraries(args))
        if args.show_prompt:
            return _show_prompt(run_, args.json)
        return _stream(run_, args)
    finally:
        session.close()
        if tools is not None and tools.toolbox.mcp is not None:
            tools.toolbox.mcp.close()


def _libraries(args: argparse.Namespace) -> list[str]:
    """The ``--library`` names, each checked to exist before the model loads.

    Raises:
        LibraryError: no library of that name (the message lists those there are).
    """
    from magimac.text.library import store

    for name in args.library:
        store.open_index(name).close()
    return list(dict.fromkeys(args.library))


def _open(args: argparse.Namespace):
    """The `ChatSession` for ``args``: ``--server URL``, else the person's own server on the
    default port when it serves the model (one notice on stderr; `magimac.session.model.open_model`),
    unless ``--no-server``; else the model loaded here."""
    from magimac.core.settings import DiskCacheSettings
    from magimac.session.model import choose_model, open_model

    def notice(line: str) -> None:
        print(f"magimac: {line}", file=sys.stderr)

    if args.server is not None:
        return open_model(args.model, server=args.server)
    choice = choose_model(args.model)
    if choice.online is not None and not (args.online or args.show_prompt):
        raise MagimacError(f"{choice.online.name} runs on Mistral's API ({choice.online.api_url}): nothing was "
                           "sent; add --online to send this conversation there")
    options = {"disk_cache": DiskCacheSettings(enabled=False)} if args.no_disk_cache else {}
    session = open_model(choice=choice, find_server=not args.no_server, notice=notice,
                         context_length=args.context_length, kv_bits=args.kv_bits, force=args.force, **options)
    if session.server is None and choice.notice:
        notice(choice.notice)
    return session


def _stream(run_, args: argparse.Namespace) -> int:
    """Print the turn's events as they come. Ctrl-C cancels the turn and keeps reading it to its
    ``Done``, so the output still ends with the numbers and (``--json``) the ``done`` line."""
    from magimac.cli.chat_output import JsonPrinter, TextPrinter, for_terminal, online_source

    online = online_source(run_.session)
    printer = (JsonPrinter(args.hide_reasoning, online) if args.json
               else TextPrinter(args.hide_reasoning, args.stats, online))
    interrupted = False
    while True:
        try:
            for ev in run_:
                printer.show(ev)
            break
        except KeyboardInterrupt:
            interrupted = True
            run_.cancel()
    done = run_.done
    printer.finish(done, run_.answer)
    if done.finish_reason == "error":
        print(for_terminal(sys.stderr)(f"magimac: {done.error}"), file=sys.stderr)
        return 1
    return 130 if interrupted or done.finish_reason == "cancelled" else 0
