"""Personal-data detection in end-user ids: e-mail addresses, phone numbers, IP addresses, card numbers.

Used by :class:`~openrouter_attribution.identity.UserIdPolicy`; framework-neutral and free of I/O.
The rules favour few false alarms on ordinary ids (``user_42``, uuids, dates) over catching every
possible format; the trade-offs are listed on :func:`detect_personal_data`.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["detect_personal_data"]

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*\.[\w-]{2,}")
_IPV4 = re.compile(r"(?<![^\W_]|\.)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])")
_IPV6 = re.compile(r"(?<![^\W_]|[:.])[0-9A-Fa-f:.]{2,}")
_CARD = re.compile(r"(?<![^\W_]|[+.-])[0-9]{4}(?:[ -][0-9]{3,6}){2,4}(?![0-9])")
_PHONE = re.compile(r"(?<![^\W_]|[+.-])\+?\(?[0-9][0-9 ().-]*[0-9]")
_DIGIT = re.compile(r"[0-9]")
_DIGIT_GROUPS = re.compile(r"[0-9]+")
_CARD_LAYOUTS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)}


def _is_personal_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    # Loopback and unspecified addresses identify nobody.
    return not (address.is_loopback or address.is_unspecified)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(candidate: str) -> bool:
    groups = tuple(_DIGIT_GROUPS.findall(candidate))
    digits = "".join(groups)
    # Major networks' leading digits (2-series Mastercard .. 6 Discover/UnionPay) and the Luhn checksum.
    return tuple(map(len, groups)) in _CARD_LAYOUTS and digits[0] in "23456" and _luhn_ok(digits)


def _is_phone(candidate: str) -> bool:
    groups = _DIGIT_GROUPS.findall(candidate)
    count = sum(map(len, groups))
    if candidate[0] == "+":  # international (E.164): country code never starts with 0, 15 digits max
        return 7 <= count <= 15 and candidate[1:].lstrip("(")[0] != "0"
    if not 9 <= count <= 15 or len(groups) < 2:  # 9+ digits: short ids and dates stay out
        return False
    if candidate[0] == "(":  # "(555) 123-4567"
        return True
    if len(groups) < 3 or len(groups[0]) > 4 or any(not 2 <= len(g) <= 4 for g in groups[1:]):
        return False
    # A date followed by a time ("2024-01-15-1030") is not a phone number.
    year, month, day = groups[0], groups[1], groups[2]
    return not (len(year) == 4 and year[:2] in ("19", "20") and "01" <= month <= "12" and "01" <= day <= "31")


def detect_personal_data(text: str) -> str | None:
    """Name the first kind of personal data found anywhere in ``text``, or ``None``.

    Detected: ``"email"`` (``local@domain.tld``), ``"payment_card"`` (13-19 digits written in the
    usual 4-4-4-4 / 4-6-5 groups with a major-network leading digit and a valid Luhn checksum),
    ``"ip_address"`` (IPv4 dotted quads and IPv6, except loopback and unspecified addresses) and
    ``"phone"`` (``+`` followed by 7-15 digits; ``(555) 123-4567``; three or more groups of 2-4 digits
    separated by space, ``-`` or ``.`` with 9-15 digits in all, dates excluded). A number glued to a
    preceding letter, digit, ``-`` or ``.`` is not a candidate, and bare digit runs such as
    ``5551234567`` or ``4111111111111111`` are not flagged: they are indistinguishable from numeric
    account ids, which must keep working.

    Args:
        text: The id to inspect.

    Returns:
        The rule name, or ``None`` when nothing was found.
    """
    if "@" in text and _EMAIL.search(text):
        return "email"
    if text.count(":") >= 2:
        for m in _IPV6.finditer(text):
            candidate = m.group().rstrip(".")
            if candidate.count(":") >= 2 and _is_personal_ip(candidate):
                return "ip_address"
    if _DIGIT.search(text) is None:
        return None
    # Cheap substring tests first: most ids have none of the separators these formats need.
    grouped, dotted = " " in text or "-" in text, "." in text
    if grouped and any(_is_card(m.group()) for m in _CARD.finditer(text)):
        return "payment_card"
    if dotted and any(_is_personal_ip(m.group()) for m in _IPV4.finditer(text)):
        return "ip_address"
    phone_like = grouped or dotted or "+" in text or "(" in text
    if phone_like and any(_is_phone(m.group()) for m in _PHONE.finditer(text)):
        return "phone"
    return None
