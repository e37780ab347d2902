"""`magimac.core.errors.one_line`: the one helper every layer uses to put an exception it did
not raise itself (MLX's, the hub's, an MCP server's) into a one-line message."""

from __future__ import annotations

from magimac.core.errors import one_line


def test_a_message_over_several_lines_becomes_one():
    e = RuntimeError("[metal::Device] cannot allocate\n  buffer of 4 GB\n\nretry later")
    assert one_line(e) == "[metal::Device] cannot allocate buffer of 4 GB retry later"


def test_a_long_message_is_cut_and_says_so():
    text = one_line(ValueError("x" * 1000))
    assert len(text) == 300 and text.endswith("...")
    assert one_line(ValueError("y" * 300)) == "y" * 300


def test_an_exception_group_gives_its_first_cause_and_an_empty_one_its_type():
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionError("mcp server closed"), OSError()])
    assert one_line(group) == "mcp server closed"
    assert one_line(KeyError()) == "KeyError"
