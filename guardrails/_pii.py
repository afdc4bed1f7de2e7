"""`PIIGuard`: finds personal data and secrets in payloads and redacts them (or blocks).

Kinds: `email`, `phone`, `card` (Luhn-checked), `iban` (mod-97 checked), `national_id` (US SSN,
UK NI number), `secret` (known key prefixes, private keys, JWTs) and `high_entropy` (random-looking
tokens). A match is replaced by `[REDACTED:<kind>]`; the decision's reason names the kinds and counts
(never the values).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from ._protocol import HOOKS, Decision, GuardContext, Hook
from ._secrets import find_high_entropy, find_keys
from ._text import Finding, map_strings, memoized_scan, strings_of

__all__ = ('PIIGuard', 'PII_KINDS', 'find_pii', 'redact_text', 'luhn_ok', 'iban_ok')

#: In order of precedence when two findings overlap.
PII_KINDS: tuple[str, ...] = ('secret', 'email', 'iban', 'card', 'national_id', 'phone', 'high_entropy')

# Address-looking strings whose "TLD" is a file extension (`icon@2x.png`) are not emails.
_FILE_EXT = frozenset('png jpg jpeg gif svg webp ico css js ts json yaml yml toml md txt py rb go rs lock html'.split())
_EMAIL = re.compile(
    r'(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])'
)
_PHONE_INTL = re.compile(r'(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w])')
_PHONE_NANP = re.compile(r'(?<![\w.])(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w]|\.\d)')
_CARD = re.compile(r'(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])')
_IBAN = re.compile(r'\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b')
_SSN = re.compile(r'(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])')
_NINO = re.compile(r'\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b')
_IBAN_LENGTHS = {
    'AD': 24,
    'AT': 20,
    'BE': 16,
    'BG': 22,
    'CH': 21,
    'CY': 28,
    'CZ': 24,
    'DE': 22,
    'DK': 18,
    'EE': 20,
    'ES': 24,
    'FI': 18,
    'FR': 27,
    'GB': 22,
    'GR': 27,
    'HR': 21,
    'HU': 28,
    'IE': 22,
    'IS': 26,
    'IT': 27,
    'LI': 21,
    'LT': 20,
    'LU': 20,
    'LV': 21,
    'MC': 27,
    'MT': 31,
    'NL': 18,
    'NO': 15,
    'PL': 28,
    'PT': 25,
    'RO': 24,
    'SE': 24,
    'SI': 19,
    'SK': 24,
    'SM': 27,
    'TR': 26,
}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    s = iban.replace(' ', '').upper()
    if not re.fullmatch(r'[A-Z]{2}\d{2}[A-Z0-9]{11,30}', s):
        return False
    if _IBAN_LENGTHS.get(s[:2], len(s)) != len(s):
        return False
    return int(''.join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def _emails(text: str) -> Iterable[Finding]:
    for m in _EMAIL.finditer(text):
        if m.group(1).lower() not in _FILE_EXT:
            yield Finding('email', m.start(), m.end(), m.group())


def _phones(text: str) -> Iterable[Finding]:
    for rx in (_PHONE_INTL, _PHONE_NANP):
        for m in rx.finditer(text):
            n = sum(c.isdigit() for c in m.group())
            if 10 <= n <= 15 or (rx is _PHONE_INTL and n >= 8):
                yield Finding('phone', m.start(), m.end(), m.group())


def _cards(text: str) -> Iterable[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r'\D', '', m.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_ok(digits):
            yield Finding('card', m.start(), m.end(), m.group())


def _ibans(text: str) -> Iterable[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        want = _IBAN_LENGTHS.get(raw[:2])
        if want is not None:  # the greedy match may run into the next word: cut it at the country's length
            seen, cut = 0, 0
            for cut, ch in enumerate(raw, 1):  # noqa: B007 - the loop's last index is the cut
                seen += ch != ' '
                if seen == want:
                    break
            raw = raw[:cut]
        if iban_ok(raw):
            yield Finding('iban', m.start(), m.start() + len(raw), raw)


def _national_ids(text: str) -> Iterable[Finding]:
    for rx in (_SSN, _NINO):
        yield from (Finding('national_id', m.start(), m.end(), m.group()) for m in rx.finditer(text))


# Every match of the IBAN, card, national id and phone patterns holds a digit (`\d`, as they say
# it), and every email an `@`: a text without one is not scanned for them (most prose has neither).
_DIGIT = re.compile(r'\d')


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[Finding]:
    """Every finding of the given kinds, sorted by position, without overlaps."""
    kinds = set(kinds)
    found: list[Finding] = []
    if 'secret' in kinds:
        found += [Finding('secret', f.start, f.end, f.text) for f in find_keys(text)]
    if 'email' in kinds and '@' in text:
        found += _emails(text)
    if _DIGIT.search(text) is not None:
        if 'iban' in kinds:
            found += _ibans(text)
        if 'card' in kinds:
            found += _cards(text)
        if 'national_id' in kinds:
            found += _national_ids(text)
        if 'phone' in kinds:
            found += _phones(text)
    if 'high_entropy' in kinds:
        found += find_high_entropy(text)
    # Overlaps go to the more specific detector (a key prefix beats "random-looking"), then the longer match.
    rank = {k: i for i, k in enumerate(PII_KINDS)}
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (rank[f.kind], -(f.end - f.start), f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def redact_text(text: str, findings: Sequence[Finding]) -> str:
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(f'[REDACTED:{f.kind}]')
        pos = f.end
    out.append(text[pos:])
    return ''.join(out)


def _scan(text: str, kinds: tuple[str, ...], allow: frozenset[str]) -> tuple[Finding, ...]:
    return tuple(f for f in find_pii(text, kinds) if f.text not in allow)


class PIIGuard:
    """Redacts (or blocks on) personal data and secrets at the hooks it is given (default: all five).

    `kinds` picks detectors (default `PII_KINDS`); `action='block'` trips the guardrail instead of
    redacting; `allow` lists exact strings never to flag (a support address that may appear).
    """

    def __init__(
        self,
        *,
        kinds: Iterable[str] = PII_KINDS,
        action: Literal['redact', 'block'] = 'redact',
        hooks: Iterable[Hook] = HOOKS,
        allow: Iterable[str] = (),
        name: str = 'pii',
    ) -> None:
        from ..exceptions import ConfigError

        self.kinds = tuple(kinds)
        bad = set(self.kinds) - set(PII_KINDS)
        if bad:
            raise ConfigError(
                f'unknown PII kinds {sorted(bad)} (known: {", ".join(PII_KINDS)})', key='guardrails.pii.kinds'
            )
        if action not in ('redact', 'block'):
            raise ConfigError(f"action must be 'redact' or 'block', not {action!r}", key='guardrails.pii.action')
        self.action = action
        self.hooks = frozenset(hooks)
        self.allow = frozenset(allow)
        self.name = name
        self._memo = memoized_scan(_scan)

    def _findings(self, text: str, run_id: str) -> tuple[Finding, ...]:
        return self._memo(run_id, text, self.kinds, self.allow)

    def check(self, payload: Any, ctx: GuardContext) -> Decision:
        counts: Counter[str] = Counter()
        for s in strings_of(payload):
            counts.update(f.kind for f in self._findings(s, ctx.run_id))
        if not counts:
            return Decision.allow()
        what = ', '.join(f'{n} {k}' for k, n in sorted(counts.items()))
        if self.action == 'block':
            return Decision.block(f'found {what}')

        def scrub(s: str) -> str:
            found = self._findings(s, ctx.run_id)
            return redact_text(s, found) if found else s

        redacted = map_strings(payload, scrub)
        if redacted is payload or redacted == payload:  # an object we cannot rewrite: refuse rather than leak
            return Decision.block(f'found {what} in a {type(payload).__name__} that cannot be redacted')
        return Decision.redact(redacted, f'redacted {what}')
