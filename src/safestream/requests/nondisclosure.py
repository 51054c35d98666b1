"""Non-disclosure orders: one check that every place able to tell a user consults.

When an *open* law-enforcement request carries the non-disclosure flag (an NDO,
e.g. a US 18 U.S.C. 2705(b) order), nothing may tell the user it names that
they are being looked at: no ``warn`` live action, no user notification by the
platform, no export handed to the user. :func:`nondisclosure_applies` answers
"does an NDO cover any of these identifiers?" (account id, username, IP).

Matching errs on the side of silence: identifiers are compared trimmed and
case-folded (``Alice`` and ``alice`` match), and IP addresses in canonical form
(``2001:DB8::1`` and ``2001:db8:0::1`` match). A false match only withholds a
warning; a missed match could tip off a suspect.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from safestream.store import lerequests as sql
from safestream.store.db import Store

#: The context fields that identify a user.
IDENTIFYING_FIELDS = ("account_id", "username", "ip_address")


def normalise(identifier: str) -> str:
    """The form identifiers are compared in: an IP canonical, anything else case-folded."""
    text = identifier.strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.casefold()


def identifiers_of(context: Mapping[str, Any] | Any) -> list[str]:
    """The identifying values of a context (a dict, or an object with those attributes)."""
    out = []
    for name in IDENTIFYING_FIELDS:
        value = context.get(name) if isinstance(context, Mapping) else getattr(context, name, None)
        if value is not None and str(value).strip():
            out.append(str(value))
    return out


def covered_identifiers(store: Store) -> set[str]:
    """Normalised identifiers named by open requests under a non-disclosure order."""
    with store.engine.connect() as conn:
        named = sql.open_nondisclosure_identifiers(conn)
    return {normalise(i) for i in named if i.strip()}


def nondisclosure_applies(store: Store, identifiers: Iterable[str | None]) -> bool:
    """True when an open request with a non-disclosure order names any of ``identifiers``."""
    wanted = {normalise(i) for i in identifiers if i is not None and i.strip()}
    if not wanted:
        return False
    return not wanted.isdisjoint(covered_identifiers(store))


__all__ = [
    "IDENTIFYING_FIELDS",
    "covered_identifiers",
    "identifiers_of",
    "nondisclosure_applies",
    "normalise",
]
