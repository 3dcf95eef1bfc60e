"""A measurement's flags: plain sentences in the order they arose, and among them, kept apart by
what each concerns, its judgement calls.

A judgement call is a place where the measurement chose between readings of the model's
detections instead of taking them as they came: which instance is S1, how many levels a gap
hides, a plate the corners misread replaced by the outline's or squared to the chain
(`CALL_ABOUT_NAMING` for the naming of the levels, else the level whose plates it changed).
Informational flags (cervical bodies left unnamed, a class the count overruled, fragments
dropped) are no calls. `spine_d2.measure.reads` trusts a read that made no call on an angle over
one that did.
"""
from __future__ import annotations

from typing import Iterable, Mapping

#: the key of the calls made in naming the levels (which instance is S1, gaps, classes out of order)
CALL_ABOUT_NAMING = "naming"


class Flags(list):
    """The flags (a list of sentences, as before) with `calls`: what a call concerns (a level name
    or `CALL_ABOUT_NAMING`) → the sentences of its calls."""

    def __init__(self, items: Iterable[str] = (), calls: Mapping[str, Iterable[str]] | None = None):
        super().__init__(items)
        self.calls: dict[str, list[str]] = {k: list(v) for k, v in (calls or {}).items()}


def judged(flags: list[str], about: str, sentence: str) -> None:
    """Append `sentence` to `flags`; where `flags` keeps calls (`Flags`), also as a call about
    `about` (a level name or `CALL_ABOUT_NAMING`)."""
    flags.append(sentence)
    if isinstance(flags, Flags):
        flags.calls.setdefault(about, []).append(sentence)
