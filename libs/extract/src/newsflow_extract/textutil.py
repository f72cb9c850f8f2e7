"""Text normalisation and fingerprints: word counts, the exact-duplicate hash and a 64-bit SimHash."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

_WORD = re.compile(r"\w+")

SHINGLE = 3


def clean_space(text: str) -> str:
    """One line: collapse every run of whitespace (incl. no-break spaces) into a single space."""
    if "\u00ad" in text or "\u200b" in text:
        text = text.replace("\u00ad", "").replace("\u200b", "")
    # str.split() splits where re's \s matches (str.isspace), at a quarter of the regex's cost
    return " ".join(text.split())


def normalise(text: str) -> str:
    """The form two texts are compared in: NFKC, case-folded, whitespace collapsed."""
    return clean_space(unicodedata.normalize("NFKC", text).casefold())


def key(text: str) -> str:
    """A comparison key that ignores case, spacing and punctuation (for captions vs body lines)."""
    return " ".join(_WORD.findall(normalise(text)))


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


# Scripts written without spaces between words, and about how many characters a word takes in each:
# Chinese and Japanese (Han, kana) 2, Thai, Lao, Khmer and Burmese 4. One \w+ run there is a clause.
_UNSPACED = (
    (re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"), 2),
    (re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]"), 4),
)


_ANY_UNSPACED = re.compile(
    r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)


def word_count(text: str) -> int:
    if text.isascii() or not _ANY_UNSPACED.search(text):
        return len(_WORD.findall(text))
    words = 0
    for rx, chars_per_word in _UNSPACED:
        if rx.search(text):
            n = len(rx.findall(text))
            text = rx.sub(" ", text)
            words += (n + chars_per_word - 1) // chars_per_word
    return words + len(_WORD.findall(text))


def content_hash(text: str) -> str:
    """sha256 of the normalised text: equal for copies that differ only in case and spacing."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def _h64(s: str) -> bytes:
    return hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest()


def simhash(text: str, shingle: int = SHINGLE) -> str:
    """64-bit SimHash over word shingles, as 16 hex digits.

    Syndicated copies of one wire story (same body, different chrome or a changed sentence) land
    within a few bits of each other; `hamming(a, b) <= 3` is the usual near-duplicate threshold.
    """
    toks = words(text)
    if not toks:
        return "0" * 16
    grams = [" ".join(toks[i : i + shingle]) for i in range(max(1, len(toks) - shingle + 1))]
    # one bit vote per shingle and bit position, counted column-wise by numpy
    bits = np.unpackbits(np.frombuffer(b"".join(map(_h64, grams)), dtype=np.uint8).reshape(len(grams), 8), axis=1)
    votes = bits.sum(axis=0, dtype=np.int64) * 2 > len(grams)
    return np.packbits(votes).tobytes().hex()


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
