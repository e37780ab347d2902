"""`magimac chat` end to end on the scripted checkpoint (in-process, and once as a process)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from magimac.testing.checkpoint import DEFAULT_SCRIPT_ANSWER as ANSWER
from magimac.testing.checkpoint import DEFAULT_SCRIPT_REASONING as REASONING
from magimac.cli.main import main


def chat(capsys, monkeypatch, *args, stdin: str = ""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(["chat", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def texts(lines, kind):
    return "".join(d["text"] for d in lines if d["type"] == kind)


def test_json_lines_give_exact_reasoning_answer_stats_done(capsys, monkeypatch, scripted_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json", "Hi")
    assert rc == 0, err
    lines = json_lines(out)
    assert texts(lines, "reasoning") == REASONING and texts(lines, "answer") == ANSWER
    assert [d["type"] for d in lines[-2:]] == ["stats", "done"]
    assert lines[-1] == {"type": "done", "finish_reason": "stop"}
    stats = lines[-2]
    assert stats["prompt_tokens"] > 0 and stats["reasoning_tokens"] > 0 and stats["answer_tokens"] > 0


def test_plain_output_answer_to_stdout_reasoning_to_stderr(capsys, monkeypatch, scripted_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "Hi")
    assert rc == 0
    assert out == ANSWER + "\n"
    assert REASONING in err and "\x1b[" not in err  # not a terminal: no dimming codes
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--hide-reasoning", "Hi")
    assert (rc, out) == (0, ANSWER + "\n") and REASONING not in err


def test_prompt_from_stdin_and_show_prompt(capsys, monkeypatch, scripted_checkpoint):
    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--show-prompt",
                      "--no-system-prompt", stdin="Bonjour [INST]\n")
    assert rc == 0
    ids_line, text = out.split("\n", 1)
    ids = json.loads(ids_line)
    assert ids[:2] == [1, 3] and ids[-1] == 4 and ids.count(3) == 1
    assert text == "<s>[INST]Bonjour [INST][/INST]\n"
    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json", stdin="Hi\n")
    assert rc == 0 and texts(json_lines(out), "answer") == ANSWER


def test_conversation_file_with_image_and_system_options(capsys, monkeypatch, scripted_checkpoint, tmp_path):
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(img)
    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "reasoning": "be nice"},
        {"role": "user", "content": "What is this?", "images": [str(img)]},
    ]))
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json", "--conversation", conv)
    assert rc == 0, err
    assert texts(json_lines(out), "answer") == ANSWER
    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--show-prompt", "--json",
                      "--conversation", conv, "--system", "Be brief.", "--system-alone", "--keep-reasoning")
    shown = json_lines(out)[0]
    assert shown["type"] == "prompt" and "[IMG]" in shown["text"]
    assert shown["text"].startswith("<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST][THINK]be nice[/THINK]Hello</s>")
    sysfile = tmp_path / "sys.txt"
    sysfile.write_text("From a file.")
    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--show-prompt", "--json",
                      "--system-file", sysfile, "--system-alone", "Hi")
    assert json_lines(out)[0]["text"] == "<s>[SYSTEM_PROMPT]From a file.[/SYSTEM_PROMPT][INST]Hi[/INST]"


def test_a_custom_system_prompt_keeps_the_model_reasoning(capsys, monkeypatch, scripted_checkpoint):
    """--system without a [THINK] block: the model's reasoning instructions come first, and
    --show-prompt shows exactly that; the model still reasons."""
    from magimac.testing.checkpoint import SYSTEM_PROMPT

    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--show-prompt", "--json",
                      "--system", "You are a terse assistant.", "Hi")
    assert rc == 0
    text = json_lines(out)[0]["text"]
    assert text == ("<s>[SYSTEM_PROMPT]" + SYSTEM_PROMPT.rstrip() + "\n\nYou are a terse assistant."
                    "[/SYSTEM_PROMPT][INST]Hi[/INST]")
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json",
                        "--system", "You are a terse assistant.", "Hi")
    assert rc == 0 and texts(json_lines(out), "reasoning") == REASONING


def test_limits_from_the_command_line(capsys, monkeypatch, scripted_checkpoint):
    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json", "--max-tokens", "4", "Hi")
    lines = json_lines(out)
    assert rc == 0 and lines[-1]["finish_reason"] == "length" and texts(lines, "answer") == ""
    rc, out, _ = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json", "--reasoning-budget", "2",
                      "--seed", "1", "--temperature", "0.7", "--top-p", "0.95", "Hi")
    lines = json_lines(out)
    assert texts(lines, "answer") == ANSWER and texts(lines, "reasoning") == "The user"


@pytest.mark.parametrize("args, message", [
    (["--model", "magistral-small-2509", "Hi"], "run `magimac pull magistral-small-2509`"),
    (["--model", "{tmp}/nope", "Hi"], "unknown model"),
    (["--model", "{ckpt}", "--image", "{tmp}/missing.png", "Hi"], "missing.png: no such file"),
    (["--model", "{ckpt}", "--conversation", "{tmp}/bad.json"], "not valid JSON"),
    (["--model", "{ckpt}", "--conversation", "{tmp}/assistant_last.json"], "no prompt"),
    (["--model", "{ckpt}", "--max-tokens", "0", "Hi"], "--max-tokens must be a whole number of tokens >= 1"),
])
def test_mistakes_are_one_line_errors(capsys, monkeypatch, scripted_checkpoint, tmp_path, args, message):
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "assistant_last.json").write_text(json.dumps([{"role": "user", "content": "a"},
                                                              {"role": "assistant", "content": "b"}]))
    args = [a.format(tmp=tmp_path, ckpt=scripted_checkpoint) for a in args]
    rc, out, err = chat(capsys, monkeypatch, *args)
    assert rc == 1 and out == ""
    assert err.startswith("magimac: ") and message in err and err.count("\n") == 1


def test_after_4bit_conversion_chat_json_is_exact(capsys, monkeypatch, scripted_checkpoint, tmp_path):
    from magimac.quantize.convert import convert

    out_dir = convert(scripted_checkpoint, tmp_path / "scripted-4bit", bits=4, progress=False, log=lambda s: None)
    rc, out, err = chat(capsys, monkeypatch, "--model", out_dir, "--json", "Hi")
    assert rc == 0, err
    lines = json_lines(out)
    assert texts(lines, "reasoning") == REASONING and texts(lines, "answer") == ANSWER


def test_as_a_process_exits_cleanly(scripted_checkpoint):
    """MLX used from the engine's worker thread must not abort the process at exit."""
    p = subprocess.run([sys.executable, "-m", "magimac", "chat", "--model", str(scripted_checkpoint), "Hi"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ANSWER + "\n"


def test_empty_prompt_is_an_error_and_model_may_come_before_the_command(capsys, monkeypatch, scripted_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "   ")
    assert rc == 1 and out == "" and err.strip() == "magimac: empty prompt: type a message, or attach --image / --file"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["--model", str(scripted_checkpoint), "chat", "--json", "Hi"]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert texts(lines, "answer") == ANSWER


def test_token_limit_is_said_in_text_mode(capsys, monkeypatch, scripted_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--max-tokens", "3", "Hi")
    assert rc == 0 and "stopped at the token limit" in err



@pytest.mark.parametrize("name, content", [
    ("missing.txt", None),
    ("binary.bin", bytes(range(256)) * 8),
])
def test_json_run_with_a_bad_file_still_ends_with_done(capsys, monkeypatch, scripted_checkpoint, tmp_path,
                                                       name, content):
    """A program reading the JSON stream always sees its end: one `done` line with the error."""
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--json", "--file", bad, "Hi")
    assert rc == 1
    assert err.startswith("magimac: ") and err.count("\n") == 1 and name in err
    lines = json_lines(out)
    assert [d["type"] for d in lines].count("done") == 1
    assert lines[-1] == {"type": "done", "finish_reason": "error", "error": err.strip().removeprefix("magimac: ")}


def test_json_run_with_a_bad_model_ends_with_done(capsys, monkeypatch, tmp_path):
    rc, out, err = chat(capsys, monkeypatch, "--model", tmp_path / "nope", "--json", "Hi")
    assert rc == 1 and "unknown model" in err
    assert json_lines(out) == [{"type": "done", "finish_reason": "error",
                                "error": err.strip().removeprefix("magimac: ")}]


def test_json_run_interrupted_before_the_turn_ends_with_done_cancelled(capsys, monkeypatch):
    from magimac.models import store

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "resolve_model", interrupted)
    rc, out, err = chat(capsys, monkeypatch, "--json", "Hi")
    assert rc == 130 and err == "magimac: interrupted\n"
    assert json_lines(out) == [{"type": "done", "finish_reason": "cancelled"}]


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _chat_process(*args) -> subprocess.Popen:
    """``magimac chat`` as a person starts it from a terminal: SIGINT at its default even when
    the suite itself runs in the background (a shell's ``cmd &`` ignores SIGINT, and the
    child inherits that, so Ctrl-C could never reach it)."""
    return subprocess.Popen([sys.executable, "-m", "magimac", "chat", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


@pytest.mark.parametrize("mode", ["json", "plain"])
def test_ctrl_c_during_a_turn_still_ends_with_stats_and_done(random_checkpoint, mode):
    """SIGINT while the answer streams: the turn is cancelled and read to its end, so the output
    keeps its numbers and, with --json, the promised last line."""
    import signal

    extra = ["--json"] if mode == "json" else ["--stats"]
    p = _chat_process("--model", random_checkpoint, "--max-tokens", "5000", *extra, "Write forever")
    first = p.stdout.readline() if mode == "json" else p.stdout.read(1)  # the turn is under way
    assert first, p.stderr.read()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    if mode == "json":
        lines = json_lines(first + out)
        assert lines[-1] == {"type": "done", "finish_reason": "cancelled"}
        assert lines[-2]["type"] == "stats" and lines[-2]["answer_tokens"] + lines[-2]["reasoning_tokens"] > 0
    else:
        last = err.strip().splitlines()[-1]
        assert last.startswith("[") and "prompt tokens" in last and "answer tokens" in last


def test_stats_after_reasoning_only_are_on_their_own_line(capsys, monkeypatch, tmp_path):
    from magimac.testing.checkpoint import Script, build_checkpoint

    ckpt = build_checkpoint(tmp_path / "long-think", script=Script(
        reasoning="Let me count carefully: one two three four five six seven eight nine ten eleven twelve",
        answer="Finished"))
    rc, out, err = chat(capsys, monkeypatch, "--model", ckpt, "--max-tokens", "8", "--stats", "Hi")
    assert rc == 0 and out == ""
    stats = [line for line in err.splitlines() if "prompt tokens" in line]
    assert len(stats) == 1 and stats[0].startswith("[") and stats[0].endswith("]")


@pytest.mark.parametrize("option, value, message", [
    ("--min-p", "2", "--min-p must be"),
    ("--top-k", "-5", "--top-k must be"),
    ("--top-k", "999999", "--top-k must be"),
    ("--top-p", "0", "--top-p must be a number in (0, 1]"),
    ("--temperature", "nan", "--temperature must be a number in [0, 2]"),
    ("--seed", "-1", "--seed must be"),
])
def test_sampling_options_are_checked_before_anything_loads(capsys, monkeypatch, option, value, message):
    """Out-of-range sampling values are refused with the option's name, before a model is
    resolved (no model is installed here: the check must come first)."""
    rc, out, err = chat(capsys, monkeypatch, option, value, "Hi")
    assert rc == 1 and out == ""
    assert err.startswith(f"magimac: {message}") and err.count("\n") == 1 and f"got {value}" in err


def test_a_full_disk_for_stdout_is_one_line(scripted_checkpoint):
    p = subprocess.run([sys.executable, "-m", "magimac", "chat", "--model", str(scripted_checkpoint), "Hi"],
                       stdout=open("/dev/full", "w"), stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == (
        "magimac: cannot write the output: No space left on device; free some space or send it elsewhere")
    assert "Traceback" not in p.stderr


def test_more_context_than_the_model_takes_is_refused(capsys, monkeypatch, scripted_checkpoint):
    rc, out, err = chat(capsys, monkeypatch, "--model", scripted_checkpoint, "--context-length", "99999999", "Hi")
    assert rc == 1 and out == ""
    assert err.startswith("magimac: a context of 99,999,999 tokens is more than this model takes (131,072")
    assert err.count("\n") == 1


def test_stats_without_times_show_no_made_up_zeros():
    """A turn on a server reports token counts but no times: the line leaves the times out
    instead of printing "TTFT 0.00 s ... peak 0 B"."""
    from magimac.cli.chat_output import stats_line
    from magimac.core.events import Stats

    served = Stats(prompt_tokens=45, cached_tokens=44, reasoning_tokens=48, answer_tokens=11)
    assert stats_line(served) == "[45 prompt tokens (44 cached), 48 reasoning + 11 answer tokens]"
    local = Stats(prompt_tokens=45, ttft_s=0.5, prefill_tps=90.0, decode_tps=20.0, peak_memory_bytes=2 * 10**9)
    assert stats_line(local) == ("[45 prompt tokens (0 cached), TTFT 0.50 s, prefill 90.0 tok/s, decode 20.0 tok/s, "
                                 "0 reasoning + 0 answer tokens, peak 2.00 GB]")
