"""Prompts as the network reads them: phrases of word ids.

Any prompt is split into phrases (at ',', 'and', 'with'), and each phrase becomes one
token of the network's prefix. Binding colour, shape and position inside one phrase
token is what makes the model put the right colour in the right place; grammar or not,
every prompt goes through here, in training and at serve time alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from daguerre.models.builtin.model import MAX_PHRASES, MAX_WORDS

# Every word the grammar uses; anything else maps to UNK so any prompt encodes. The
# shipped weights carry their own copy of this list, which is what serving reads.
_GRAMMAR_WORDS = sorted(
    {
        *("a", "an", "the", "on", "in", "at", "to", "of", "with", "and"),
        *("make", "move", "remove", "add", "background", "small", "large"),
        *("left", "right", "top", "bottom", "center", "white", "black", "gray"),
        *("red", "green", "blue", "yellow", "purple", "orange", "circle", "square", "triangle"),
    }
)
WORDS: tuple[str, ...] = ("<pad>", "<unk>", *_GRAMMAR_WORDS)
_WORD_ID = {w: i for i, w in enumerate(WORDS)}

_SPLIT_RE = re.compile(r",|\band\b|\bwith\b")
_WORD_RE = re.compile(r"[a-z]+")


def phrases(text: str) -> list[list[str]]:
    """Split any prompt into phrases of words (at ',', 'and', 'with'), one token each."""
    out = []
    for part in _SPLIT_RE.split(text.lower()):
        words = _WORD_RE.findall(part)
        if words:
            out.append(words)
    return out


def encode_text(text: str, words: Sequence[str] = WORDS) -> np.ndarray:
    """(MAX_PHRASES, MAX_WORDS) word ids of a prompt's phrases; extra phrases/words are dropped."""
    ids = _WORD_ID if words is WORDS else {w: i for i, w in enumerate(words)}
    out = np.zeros((MAX_PHRASES, MAX_WORDS), np.int64)
    for p, phrase in enumerate(phrases(text)[:MAX_PHRASES]):
        for w, word in enumerate(phrase[:MAX_WORDS]):
            out[p, w] = ids.get(word, 1)
    return out
