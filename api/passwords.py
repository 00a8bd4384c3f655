"""Which new passwords we refuse: the common, the guessable and the personal.

zxcvbn (Dropbox's estimator, the `zxcvbn` package on PyPI) ships the frequency lists
a guesser starts with (about 30,000 common passwords, English words, names) and finds
keyboard walks, repeats, sequences and dates; it also takes the user's own strings
(`user_inputs`). We pass the username, the email and the email's local part, so
"password", "12345678", eight spaces and "alice2024" for alice are all refused, and a
long passphrase passes. A password scored below `MIN_SCORE` (fewer than ~10^6
guesses) is refused, which is NIST SP 800-63B's "commonly used, expected or
compromised" check without its composition rules.

The estimate is scored on the first `SCORED_CHARS` characters: zxcvbn's time grows
quickly with length (0.8 s for 128 random characters) and registration is public.
"""

from __future__ import annotations

import asyncio

from zxcvbn import zxcvbn

MIN_SCORE = 2
SCORED_CHARS = 64


def _problem(password: str, username: str, email: str) -> str | None:
    if not password.strip():
        return "must not be blank"
    personal = [username, email, email.partition("@")[0]]
    folded = password.casefold()
    if any(folded == p.casefold() for p in personal):
        return "must not be your username or email"
    scored = password[:SCORED_CHARS]
    result = zxcvbn(scored, user_inputs=personal, max_length=SCORED_CHARS)
    if result["score"] >= MIN_SCORE:
        return None
    if any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"]):
        return "is too easy to guess: it is built from your username or email"
    warning = result["feedback"]["warning"].rstrip(".")
    reason = f" ({warning.lower()})" if warning else ""
    return f"is too easy to guess{reason}; use a longer phrase of uncommon words"


async def password_problem(password: str, *, username: str, email: str) -> str | None:
    """Why this password is refused, or None. Off the event loop: up to ~0.1 s of CPU."""
    return await asyncio.to_thread(_problem, password, username, email)
