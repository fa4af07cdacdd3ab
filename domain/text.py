"""Text that people read (names, descriptions, e-mail addresses): one form, nothing hidden.

``admin\u200b@scloud.local`` and ``admin@scloud.local`` look alike on every screen. Such
text is taken only without control, format (zero-width, soft hyphen, ...), bidirectional
override or line-separator characters, and is kept in its NFKC form, so that full-width
``admin`` and ``admin`` are one name. The character class is written out (not computed from
``unicodedata`` at import, which takes seconds) so the OpenAPI document states exactly what
the API refuses; a unit test checks it still covers every such character of this Python's
Unicode.
"""

from __future__ import annotations

import re
import unicodedata

from domain.errors import ValidationFailed

_REFUSED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),  # C0 controls
    (0x007F, 0x009F),  # DEL, C1 controls
    (0x00AD, 0x00AD),  # soft hyphen
    (0x0600, 0x0605),
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),  # zero-width space, joiners, LRM, RLM
    (0x2028, 0x202E),  # line and paragraph separators, bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x206F),  # bidi isolates, deprecated format characters
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),  # interlinear annotations
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),  # language tag
    (0xE0020, 0xE007F),  # tag characters
)
"""Categories Cc, Cf, Zl and Zp: nothing a reader can see, or that reorders what they see."""

_NOT_IN_EMAIL_RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x0020),
    (0x0040, 0x0040),
    # What NFKC turns into a space or an ``@`` (no-break and other spaces, spacing accents
    # that decompose to a space and a combining mark, the full-width and small ``@``):
    # refused before normalising, so the normal form is still one address.
    (0x00A0, 0x00A0),
    (0x00A8, 0x00A8),
    (0x00AF, 0x00AF),
    (0x00B4, 0x00B4),
    (0x00B8, 0x00B8),
    (0x02D8, 0x02DD),
    (0x037A, 0x037A),
    (0x0384, 0x0385),
    (0x1680, 0x1680),  # Ogham space mark: a space NFKC keeps
    (0x1FBD, 0x1FBD),
    (0x1FBF, 0x1FC1),
    (0x1FCD, 0x1FCF),
    (0x1FDD, 0x1FDF),
    (0x1FED, 0x1FEE),
    (0x1FFD, 0x1FFE),
    (0x2000, 0x200A),
    (0x2017, 0x2017),
    (0x202F, 0x202F),
    (0x203E, 0x203E),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0x309B, 0x309C),
    (0xFC5E, 0xFC63),
    (0xFDFA, 0xFDFB),
    (0xFE49, 0xFE4C),
    (0xFE6B, 0xFE6B),
    (0xFE70, 0xFE70),
    (0xFE72, 0xFE72),
    (0xFE74, 0xFE74),
    (0xFE76, 0xFE76),
    (0xFE78, 0xFE78),
    (0xFE7A, 0xFE7A),
    (0xFE7C, 0xFE7C),
    (0xFE7E, 0xFE7E),
    (0xFF20, 0xFF20),
    (0xFFE3, 0xFFE3),
)


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """A regex class body that Python and JSON Schema (ECMA-262) regexes read alike.

    Characters past U+FFFF are written as themselves, one by one: an ECMA regex without the
    ``u`` flag sees each as two UTF-16 units, and a range of such pairs would not compile.
    """
    parts = []
    for first, last in ranges:
        if last <= 0xFFFF:
            parts.append(f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}")
        else:
            parts.extend(chr(code) for code in range(first, last + 1))
    return "".join(parts)


REFUSED = _char_class(_REFUSED_RANGES)
TEXT_PATTERN = f"^[^{REFUSED}]*$"
"""A name or a description: any text without the refused characters."""
_LOCAL = f"[^{REFUSED}{_char_class(_NOT_IN_EMAIL_RANGES)}]+"
EMAIL_PATTERN = f"^{_LOCAL}@{_LOCAL}\\.{_LOCAL}$"
"""An e-mail address: one ``@``, a dot after it, no spaces and no refused characters."""

_refused = re.compile(f"[{REFUSED}]")
_email = re.compile(EMAIL_PATTERN)


def refused_in(value: str) -> str | None:
    """What is wrong with ``value``'s characters, or None."""
    found = _refused.search(value)
    if found is None:
        return None
    char = found.group()
    name = unicodedata.name(char, "unnamed")
    kind = "a control" if unicodedata.category(char) == "Cc" else "an invisible or bidi"
    return f"U+{ord(char):04X} {name} at position {found.start()} is {kind} character"


def clean(value: str, field: str) -> str:
    """``value`` in NFKC form; refused (422 on ``field``) when it holds a refused character."""
    problem = refused_in(value)
    if problem is not None:
        raise ValidationFailed(
            f"{field} may not contain control, format (zero-width) or bidirectional "
            f"characters: {problem}",
            field=field,
        )
    return unicodedata.normalize("NFKC", value)


def clean_email(value: str, field: str) -> str:
    """An e-mail address in NFKC form, still one address once normalised."""
    cleaned = clean(value, field)
    if _email.search(cleaned) is None:
        raise ValidationFailed(f"{field} is not an e-mail address", field=field)
    return cleaned
