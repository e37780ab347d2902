"""LaTeX mathematics shown as Unicode in the terminal; code stays verbatim."""

from __future__ import annotations

import pytest

from magimac.text.latex import markdown_math_to_unicode, math_to_unicode


@pytest.mark.parametrize("latex, shown", [
    (r"\frac{a+b}{2}", "(a+b)/2"),
    (r"x^{2} + y_{i}", "x² + yᵢ"),
    (r"\sum_{i=1}^{n} i", "∑ᵢ₌₁ⁿ i"),
    (r"e^{i\pi}", "e^(iπ)"),
    (r"x \in \mathbb{R}", "x ∈ ℝ"),
    (r"a \leq b \neq c", "a ≤ b ≠ c"),
    (r"\alpha\beta\gamma", "αβγ"),
])
def test_math_becomes_unicode(latex, shown):
    assert math_to_unicode(latex) == shown


def test_markdown_math_spans_are_converted_and_code_is_not():
    md = ("Euler: $e^{i\\pi} + 1 = 0$ and \\(a_{1}\\).\n\n$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n"
          "```python\nprice = \"$x^2$\"\n```\n\nInline `$y$` stays; it costs $5 and $6.")
    out = markdown_math_to_unicode(md)
    assert "e^(iπ) + 1 = 0" in out and "a₁" in out
    assert "\u2003∫₀¹ x² dx = 1/3" in out  # display math: its own paragraph
    assert 'price = "$x^2$"' in out and "`$y$`" in out
    assert "costs $5 and $6" in out
    assert "\\frac" not in out and "$$" not in out


def test_markdown_specials_in_math_are_escaped():
    assert markdown_math_to_unicode(r"$a * b * c$") == r"a \* b \* c"
