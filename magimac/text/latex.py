"""LaTeX mathematics in Markdown shown as Unicode text, for terminals.

Magistral writes mathematics in LaTeX (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`). A terminal cannot
typeset it, so each math span is converted with `pylatexenc`'s `LatexNodes2Text` (symbols,
Greek letters, `\\mathbb`, accents). What this module adds: finding the math spans in Markdown
while leaving code blocks and inline code alone; super- and subscripts as Unicode characters
where every character has one (`x^{2}` → `x²`, `a_{ij}` → `aᵢⱼ`, else `x^(n+1)`); fractions
with parenthesised parts (`\\frac{a+b}{2}` → `(a+b)/2`); and escaping the result so Markdown
does not read `*` or `_` in it as emphasis.
"""

from __future__ import annotations

import re

from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

SUPERSCRIPTS = str.maketrans("0123456789+-=()niaeoxjklmprst", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵃᵉᵒˣʲᵏˡᵐᵖʳˢᵗ")
SUBSCRIPTS = str.maketrans("0123456789+-=()aeoxijklmnprstuv", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓᵢⱼₖₗₘₙₚᵣₛₜᵤᵥ")
_SUP_CHARS = set("0123456789+-=()niaeoxjklmprst")
_SUB_CHARS = set("0123456789+-=()aeoxijklmnprstuv")

# Math spans in order of precedence; code is matched first so it is kept verbatim.
_SPANS = re.compile(
    r"(?P<fence>^(?P<f>`{3,}|~{3,})[^\n]*\n.*?^(?P=f)[ \t]*$)"
    r"|(?P<code>`+)(?P<codebody>.+?)(?P=code)"
    r"|\$\$(?P<dd>.+?)\$\$"
    r"|\\\[(?P<br>.+?)\\\]"
    r"|\\\((?P<pa>.+?)\\\)"
    r"|(?<![\\$\w])\$(?P<d>[^\s$](?:[^$\n]*?[^\s$\\])?)\$(?!\d)",
    re.S | re.M,
)
_SCRIPT = re.compile(r"(?P<op>[\^_])(?:\{(?P<braced>[^{}]*)\}|(?P<one>\\[A-Za-z]+|[^\s{}\\]))")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _group(text: str) -> str:
    """Parenthesise a fraction part that holds an operator: `a+b` → `(a+b)`."""
    return f"({text})" if re.search(r"[-+−±·×/= ]", text) else text


def _converter() -> LatexNodes2Text:
    db = get_default_latex_context_db().filter_context(keep_categories=None)
    db.add_context_category(
        "magimac",
        prepend=True,
        macros=[
            MacroTextSpec("frac", simplify_repl=lambda n, l2tobj: "{}/{}".format(
                _group(l2tobj.nodelist_to_text([n.nodeargd.argnlist[0]]).strip()),
                _group(l2tobj.nodelist_to_text([n.nodeargd.argnlist[1]]).strip()))),
            MacroTextSpec("dfrac", simplify_repl=lambda n, l2tobj: "{}/{}".format(
                _group(l2tobj.nodelist_to_text([n.nodeargd.argnlist[0]]).strip()),
                _group(l2tobj.nodelist_to_text([n.nodeargd.argnlist[1]]).strip()))),
            MacroTextSpec("quad", simplify_repl="  "),
            MacroTextSpec("qquad", simplify_repl="    "),
        ],
    )
    return LatexNodes2Text(latex_context=db, math_mode="text", strict_latex_spaces=True)


_L2T = _converter()


def math_to_unicode(latex: str) -> str:
    """One LaTeX math expression (without `$` delimiters) as Unicode text.

    >>> math_to_unicode(r"\\alpha^{2} + \\frac{a+b}{2}")
    'α² + (a+b)/2'
    """

    def script(m: re.Match) -> str:
        body = m["braced"] if m["braced"] is not None else m["one"]
        text = _L2T.latex_to_text(body).strip()
        table, chars = (SUPERSCRIPTS, _SUP_CHARS) if m["op"] == "^" else (SUBSCRIPTS, _SUB_CHARS)
        if text and set(text) <= chars:
            return "{}" + text.translate(table)  # {} ends a preceding macro name
        return "{}" + ("\ue000" if m["op"] == "^" else "\ue001") + (f"({text})" if len(text) > 1 else text)

    # Innermost scripts first (`x^{a_{1}}`); a script left as text is written with stand-in
    # characters for ^ and _ so it is not matched again, and restored at the end.
    while True:
        new = _SCRIPT.sub(script, latex)
        if new == latex:
            break
        latex = new
    try:
        out = _L2T.latex_to_text(latex)
    except Exception:  # pylatexenc is lenient, but never let bad LaTeX break a render
        out = latex
    out = out.replace("\ue000", "^").replace("\ue001", "_")
    out = re.sub(r"\s*([≤≥≠≈≡→←⇒⇔↦∈∉⊂⊆·×±])\s*", r" \1 ", out)
    return re.sub(r"\s+", " ", out).strip()


def markdown_math_to_unicode(markdown: str) -> str:
    """Markdown with every LaTeX math span replaced by Unicode text; code is left verbatim.

    Inline math (`$…$`, `\\(…\\)`) stays inline; display math (`$$…$$`, `\\[…\\]`) becomes a
    paragraph of its own, indented by an em space.  Markdown-special characters in the result are escaped.
    """

    def repl(m: re.Match) -> str:
        if m["fence"] is not None or m["code"] is not None:
            return m.group(0)
        display = m["dd"] if m["dd"] is not None else m["br"]
        if display is not None:
            text = _MD_SPECIAL.sub(r"\\\1", math_to_unicode(display))
            return f"\n\n\u2003{text}\n\n"
        inline = m["pa"] if m["pa"] is not None else m["d"]
        return _MD_SPECIAL.sub(r"\\\1", math_to_unicode(inline))

    return _SPANS.sub(repl, markdown)
