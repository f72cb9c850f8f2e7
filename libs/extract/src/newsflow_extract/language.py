"""Language of an article: what the page declares, checked against what its text says."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# py3langid mixes these up on news text; between them the page's own declaration is trusted.
_CLOSE = [
    {"no", "nb", "nn", "da", "sv"},
    {"ms", "id"},
    {"hr", "sr", "bs"},
    {"cs", "sk"},
    {"es", "gl", "ca"},
    {"pt", "gl"},
    {"ru", "uk", "be"},
    {"ar", "fa", "ur"},
    {"de", "lb"},
    {"fr", "wa"},
    {"zh", "ja"},
]
DETECT_CHARS = 1500
MIN_DETECT_CHARS = 40
OVERRIDE_CHARS = 500
OVERRIDE_PROB = 0.995


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str) -> tuple[str, float] | None:
    sample = text[:DETECT_CHARS]
    if len(sample.strip()) < MIN_DETECT_CHARS:
        return None
    lang, prob = _identifier().classify(sample)
    return str(lang), float(prob)


def _close(a: str, b: str) -> bool:
    return any(a in g and b in g for g in _CLOSE)


def choose(declared: str | None, declared_source: str | None, text: str) -> tuple[str | None, str | None]:
    """(language, source). Templates often keep a default `lang="en"` on pages in other languages,
    so a long text that is confidently in another, clearly different language overrides the page."""
    found = detect(text)
    if declared:
        if (
            found
            and found[0] != declared
            and len(text) >= OVERRIDE_CHARS
            and found[1] >= OVERRIDE_PROB
            and not _close(found[0], declared)
        ):
            return found[0], "detected"
        return declared, declared_source
    if found:
        return found[0], "detected"
    return None, None
