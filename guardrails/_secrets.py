"""Finding API keys and secrets: well-known key prefixes, private key blocks, JWTs, and high-entropy tokens.

The entropy check looks for long mixed-case letter+digit tokens that change character class often
(as random base62/base64 does); identifiers (`MyLongVariableName2`), paths, UUIDs and hex digests
(git SHAs) are left alone on purpose, so a hex-only secret is only found by its prefix.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from ._text import Finding

__all__ = ('KEY_PATTERNS', 'find_keys', 'find_high_entropy', 'shannon_entropy')

#: (kind, pattern) for secrets with a recognisable shape.
KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx))
    for kind, rx in (
        ('openai_key', r'(?<![\w-])sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}'),
        ('github_token', r'\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b'),
        ('github_token', r'\bgithub_pat_[A-Za-z0-9_]{22,}'),
        ('aws_access_key', r'\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b'),
        ('slack_token', r'\bxox[abposr]-[A-Za-z0-9-]{10,}'),
        ('google_api_key', r'\bAIza[0-9A-Za-z_-]{35}'),
        ('gitlab_token', r'\bglpat-[A-Za-z0-9_-]{20,}'),
        ('stripe_key', r'\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}'),
        ('huggingface_token', r'\bhf_[A-Za-z0-9]{30,}\b'),
        (
            'private_key',
            r'-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)',
        ),
        ('jwt', r'\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}'),
    )
)

#: For each of `KEY_PATTERNS`, the literals one of which its every match holds: most text holds
#: none, and a substring test is ~50x cheaper than a pattern's scan (Python's `re` scans every
#: position of a pattern that opens with a word boundary).
_LITERALS: tuple[tuple[str, ...], ...] = (
    ('sk-',),
    ('ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_'),
    ('github_pat_',),
    ('AKIA', 'ASIA', 'ABIA', 'ACCA'),
    ('xox',),
    ('AIza',),
    ('glpat-',),
    ('_live_', '_test_'),
    ('hf_',),
    ('-----BEGIN ',),
    ('eyJ',),
)
assert len(_LITERALS) == len(KEY_PATTERNS)
# Any of them, in one scan: a text that holds none of them (most text) is done in one search.
_ANY_LITERAL = re.compile('|'.join(re.escape(lit) for lits in _LITERALS for lit in lits))

_TOKEN = re.compile(r'(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/=-]{20,}(?![A-Za-z0-9_+/=-])')


def shannon_entropy(s: str) -> float:
    """Bits per character of `s`."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _class_changes(s: str) -> float:
    def cls(ch: str) -> int:
        return 0 if ch.isupper() else 1 if ch.islower() else 2 if ch.isdigit() else 3

    return sum(cls(a) != cls(b) for a, b in zip(s, s[1:])) / max(1, len(s) - 1)


def find_keys(text: str) -> list[Finding]:
    """API keys, tokens and private keys with a known prefix or shape."""
    out: list[Finding] = []
    if _ANY_LITERAL.search(text) is None:
        return out
    for (kind, rx), literals in zip(KEY_PATTERNS, _LITERALS, strict=True):
        if not any(lit in text for lit in literals):
            continue
        out.extend(Finding(kind, m.start(), m.end(), m.group()) for m in rx.finditer(text))
    return out


def find_high_entropy(
    text: str, *, min_length: int = 20, min_entropy: float = 4.0, min_changes: float = 0.45
) -> list[Finding]:
    """Random-looking tokens: mixed case, letters and digits, high entropy, frequent class changes."""
    out: list[Finding] = []
    for m in _TOKEN.finditer(text):
        tok = m.group().strip('=')
        if len(tok) < min_length:
            continue
        if not (any(c.isdigit() for c in tok) and any(c.isupper() for c in tok) and any(c.islower() for c in tok)):
            continue
        if shannon_entropy(tok) >= min_entropy and _class_changes(tok) >= min_changes:
            out.append(Finding('high_entropy', m.start(), m.end(), m.group()))
    return out
