"""Word error rate, exactly as docs/METRICS.md defines it.

Standard WER: word-level edit distance (substitutions + deletions + insertions) divided by the
number of reference words, computed by the ``jiwer`` library after both texts are lower-cased and
stripped of punctuation. Several turns are scored together as one corpus (total edits over total
reference words), never as an average of per-turn rates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import jiwer

# Apostrophes inside words ("don't") are kept so contractions stay one word; every other
# punctuation or symbol character becomes a word break.
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'"})


def normalise(text: str) -> str:
    """Lower-case ``text``, strip punctuation and collapse whitespace.

    ``"Hi, I need to cancel -- my subscription!"`` -> ``"hi i need to cancel my subscription"``.
    """
    text = text.translate(_APOSTROPHES).lower()
    chars = [
        " " if unicodedata.category(ch)[0] in "PSZC" and ch != "'" else ch for ch in text
    ]
    words = [w.strip("'") for w in "".join(chars).split()]
    return " ".join(w for w in words if w)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float | None:
    """Corpus WER of ``hypotheses`` against ``references`` (pairwise, same length).

    Returns ``None`` when the references hold no words at all (WER is undefined). A missing
    hypothesis should be passed as ``""``: all its reference words then count as deletions.
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses: pass one each"
        )
    pairs = [(normalise(r), normalise(h)) for r, h in zip(references, hypotheses, strict=True)]
    scored = [(r, h) for r, h in pairs if r]
    inserted = sum(len(h.split()) for r, h in pairs if not r)
    if not scored:
        return None
    out = jiwer.process_words([r for r, _ in scored], [h for _, h in scored])
    words = sum(len(r.split()) for r, _ in scored)
    edits = out.substitutions + out.deletions + out.insertions + inserted
    return float(edits) / float(words)
