"""Leakage that survives formatting: golden-set texts copied into a batch, exactly or nearly.

Exact overlap compares :func:`normalize_text` forms: Unicode NFKC (full-width
letters become ASCII), casefolded, punctuation and spacing removed, so a golden
text re-punctuated or re-typed in full-width letters is still caught.

Near-duplicates (optional, ``validation.near_duplicate_threshold``) compare word
trigrams by Jaccard similarity through an inverted index over the golden set, so
a batch is checked in time proportional to the trigrams it shares with it, not
to the product of the two sizes.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence


def normalize_text(text: str) -> str:
    """NFKC, casefolded, letters and digits only; texts of nothing but punctuation keep their symbols."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(character for character in folded if character.isalnum())
    return kept or "".join(folded.split())


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = ("".join(c for c in word if c.isalnum()) for word in folded.split())
    return [word for word in words if word]


def shingles(text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    """Word n-grams of the normalised words; a text shorter than ``size`` words is one shingle."""
    words = _words(text)
    if len(words) < size:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


class GoldenIndex:
    """The golden set's word trigrams, indexed for the nearest golden text of each batch text."""

    def __init__(self, golden_texts: Iterable[str]):
        self._sizes: list[int] = []
        self._postings: dict[tuple[str, ...], list[int]] = {}
        for index, text in enumerate(golden_texts):
            grams = shingles(text)
            self._sizes.append(len(grams))
            for gram in grams:
                self._postings.setdefault(gram, []).append(index)

    def nearest(self, texts: Sequence[str | None]) -> list[float]:
        """Per text, the highest Jaccard similarity to any golden text (0.0 when none shares a trigram)."""
        scores = []
        for text in texts:
            grams = shingles(text) if text else frozenset()
            shared: Counter[int] = Counter()
            for gram in grams:
                shared.update(self._postings.get(gram, ()))
            scores.append(
                max((n / (len(grams) + self._sizes[g] - n) for g, n in shared.items()), default=0.0)
            )
        return scores
