"""`magimac chat`: one turn, headless, for scripts and pipes.

The answer goes to stdout; the reasoning goes to stderr (dimmed when stderr is a terminal
and ``NO_COLOR`` is unset; ``--hide-reasoning`` drops it).  ``--json`` prints JSON Lines on
stdout instead: ``{"type": "reasoning"|"answer", "text"}``, ``{"type": "stats", ...Stats}``,
``{"type": "done", "finish_reason", "error"?}`` (always the last line, also when the
turn never starts).  ``--file PATH`` attaches a document
(`magimac.text.retrieval.attach_for_engine`); the passages sent are reported first: one line on
stderr, or a ``{"type": "documents", ...}`` line (`retrieval.context_report`) with ``--json``.

Exit status: 0 when the turn stops or hits the token limit, 1 on an error (printed as
``magimac: <message>``), 130 when interrupted (Ctrl-C cancels the turn; what was generated is
kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.conversation import ConversationError, Message, conversation_from_json

DIM, RESET = "\x1b[2m", "\x1b[0m"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `magimac chat` (see the module doc)."""
    p.add_argument("prompt", nargs="?", help="the message; read from stdin when omitted and stdin is not a terminal")
    p.add_argument("--model", help="registry name, hub id or converted model directory (default: the default model)")
    p.add_argument("--json", action="store_true", help="print JSON Lines (reasoning, answer, stats, done)")
    p.add_argument("--hide-reasoning", action="store_true", help="do not print the reasoning")
    p.add_argument("--conversation", metavar="FILE", type=Path,
                   help="continue a conversation: a JSON list of {role, content, reasoning?, images?}")
    p.add_argument("--image", metavar="PATH", action="append", default=[], help="attach an image (repeatable)")
    p.add_argument("--file", metavar="PATH", action="append", default=[],
                   help="attach a document: text, Markdown, code, CSV, HTML, PDF, DOCX (repeatable; read locally)")
    sys_group = p.add_mutually_exclusive_group()
    sys_group.add_argument("--system", metavar="TEXT", help="use this system prompt instead of the model's")
    sys_group.add_argument("--system-file", metavar="FILE", type=Path, help="read the system prompt from FILE")
    sys_group.add_argument("--no-system-prompt", action="store_true", help="send no system prompt")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the model's, 0.7)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (default: the model's, 0.95)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: off)")
    p.add_argument("--min-p", type=float, default=0.0, help="min-p sampling (0: off)")
    p.add_argument("--seed", type=int, help="random seed, for repeatable output")
    p.add_argument("--max-tokens", type=int, help="most tokens to generate (default: the rest of the context)")
    p.add_argument("--reasoning-budget", type=int, metavar="N", help="end the reasoning after N tokens")
    p.add_argument("--keep-reasoning", action="store_true", help="keep earlier turns' reasoning in the prompt")
    p.add_argument("--context-length", type=int, metavar="TOKENS", help="context limit (default: the model's)")
    p.add_argument("--kv-bits", type=int, choices=(4, 8), help="quantize the KV cache")
    p.add_argument("--force", action="store_true", help="load even if the model looks too large for this machine")
    p.add_argument("--stats", action="store_true", help="print the turn's numbers to stderr")
    p.add_argument("--show-prompt", action="store_true",
                   help="print the prompt's token ids (JSON) and its text, and generate nothing")


def _read_conversation(path: Path) -> list[Message]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MagimacError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MagimacError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise ConversationError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    return conversation_from_json(data, str(path))


def build_messages(args: argparse.Namespace, stdin=None) -> list[Message]:
    """The conversation for this turn: ``--conversation`` plus the prompt and ``--image``s.

    Raises:
        MagimacError / ConversationError: unreadable files, missing images, no prompt.
    """
    stdin = sys.stdin if stdin is None else stdin
    messages = _read_conversation(args.conversation) if args.conversation else []
    text = args.prompt
    if text is None and not (messages and messages[-1].role == "user") and not stdin.isatty():
        text = stdin.read().rstrip("\n")  # the newline `echo` adds is not part of the message
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
    else:
        raise MagimacError("no prompt: give it as an argument, on stdin, or end --conversation with a user message")
    return messages


def build_settings(args: argparse.Namespace):
    """GenerationSettings from the options."""
    from magimac.engine.worker import DEFAULT, SETTING_RANGES, GenerationSettings, setting_error

    if args.no_system_prompt:
        system = None
    elif args.system is not None:
        system = args.system
    elif args.system_file is not None:
        try:
            system = args.system_file.read_text(encoding="utf-8")
        except OSError as e:
            raise MagimacError(f"{args.system_file}: cannot read ({e.strerror})") from None
    else:
        system = DEFAULT
    if args.context_length is not None and args.context_length < 1:
        raise MagimacError(f"--context-length must be a positive number of tokens, got {args.context_length}")
    for name in SETTING_RANGES:
        v = getattr(args, name)
        if v is not None and (problem := setting_error(name, v)):
            raise MagimacError(f"--{name.replace('_', '-')} {problem}, got {v}")
    return GenerationSettings(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
        seed=args.seed, max_tokens=args.max_tokens, reasoning_budget=args.reasoning_budget,
        keep_reasoning=args.keep_reasoning, system_prompt=system,
    )


def _show_prompt(engine, messages, settings, as_json: bool) -> int:
    from magimac.text.prompt import PromptError

    try:
        p = engine.encode(messages, settings)
    except PromptError as e:
        raise MagimacError(str(e)) from None
    if as_json:
        print(json.dumps({"type": "prompt", "tokens": p.tokens, "text": p.text}, ensure_ascii=False))
    else:
        print(json.dumps(p.tokens))
        print(p.text)
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
    try:
        return _run(args)
    except MagimacError as e:
        _jl({"type": "done", "finish_reason": "error", "error": str(e)})
        raise
    except KeyboardInterrupt:
        _jl({"type": "done", "finish_reason": "cancelled"})
        raise


def _run(args: argparse.Namespace) -> int:
    from magimac.engine.worker import Engine, EngineLoadError
    from magimac.core.events import AnswerDelta, Done, ReasoningDelta, Stats

    messages = build_messages(args)
    settings = build_settings(args)
    from magimac.models import store

    path = store.resolve_model(args.model)
    if notice := store.demo_notice(args.model, path):
        print(f"magimac: {notice}", file=sys.stderr)
    engine = Engine(path, context_length=args.context_length, kv_bits=args.kv_bits, force=args.force)
    try:
        messages = _attach_documents(engine, messages, settings, args.json)
        if args.show_prompt:
            try:
                return _show_prompt(engine, messages, settings, args.json)
            except EngineLoadError as e:
                raise MagimacError(str(e)) from None
        try:
            engine.wait_loaded()
        except EngineLoadError as e:
            raise MagimacError(str(e)) from None
        return _stream(engine, engine.submit(messages, settings), args, (AnswerDelta, Done, ReasoningDelta, Stats))
    finally:
        engine.close()


def _attach_documents(engine, messages, settings, as_json: bool):
    """Put attached documents into the messages (`retrieval.attach_for_engine`) and report
    what was sent: a ``{"type": "documents", ...}`` line with --json, else one line on stderr."""
    if not any(m.documents for m in messages):
        return messages
    from magimac.text.documents import DocumentError
    from magimac.engine.worker import EngineLoadError
    from magimac.text.prompt import PromptError
    from magimac.text.retrieval import attach_for_engine, context_report, context_summary

    try:
        messages, ctx = attach_for_engine(engine, messages, settings)
    except (DocumentError, EngineLoadError, PromptError) as e:
        raise MagimacError(str(e)) from None
    if as_json:
        _jl(context_report(ctx))
    else:
        print(context_summary(ctx), file=sys.stderr)
    return messages


def _stream(engine, turn, args, types) -> int:
    AnswerDelta, Done, ReasoningDelta, Stats = types
    out, err = sys.stdout, sys.stderr
    dim = err.isatty() and not os.environ.get("NO_COLOR")
    in_reasoning = False
    answer_end = "\n"
    interrupted = False
    events = iter(turn)
    while True:
        try:
            ev = next(events)
        except StopIteration:
            break
        except KeyboardInterrupt:
            interrupted = True
            engine.cancel()
            continue
        if args.json:
            if isinstance(ev, ReasoningDelta) and not args.hide_reasoning:
                _jl({"type": "reasoning", "text": ev.text})
            elif isinstance(ev, AnswerDelta):
                _jl({"type": "answer", "text": ev.text})
            elif isinstance(ev, Stats):
                _jl({"type": "stats", **asdict(ev)})
            elif isinstance(ev, Done):
                d = {"type": "done", "finish_reason": ev.finish_reason}
                if ev.error:
                    d["error"] = ev.error
                _jl(d)
            continue
        if isinstance(ev, ReasoningDelta) and not args.hide_reasoning:
            if not in_reasoning and dim:
                err.write(DIM)
            in_reasoning = True
            err.write(ev.text)
            err.flush()
        elif isinstance(ev, AnswerDelta):
            if in_reasoning:
                err.write((RESET if dim else "") + "\n\n")
                err.flush()
                in_reasoning = False
            out.write(ev.text)
            out.flush()
            answer_end = ev.text[-1:] or answer_end
        elif isinstance(ev, Stats) and args.stats:
            err.write(f"[{ev.prompt_tokens} prompt tokens ({ev.cached_tokens} cached), "
                      f"TTFT {ev.ttft_s:.2f} s, prefill {ev.prefill_tps:.1f} tok/s, decode {ev.decode_tps:.1f} tok/s, "
                      f"{ev.reasoning_tokens} reasoning + {ev.answer_tokens} answer tokens, "
                      f"peak {ev.peak_memory_bytes / 1e9:.2f} GB]\n")
    if in_reasoning:
        err.write((RESET if dim else "") + "\n")
    done = turn.done
    if not args.json and answer_end != "\n":
        out.write("\n")
    out.flush()
    if done is not None and done.finish_reason == "error":
        print(f"magimac: {done.error}", file=err)
        return 1
    if interrupted or (done is not None and done.finish_reason == "cancelled"):
        return 130
    if not args.json and done is not None and done.finish_reason == "length":
        print("magimac: stopped at the token limit (raise --max-tokens or --context-length)", file=err)
    return 0


def _jl(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()
