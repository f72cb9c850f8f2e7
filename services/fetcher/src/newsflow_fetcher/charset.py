"""Kept for imports of the fetcher's own: the decoding lives in newsflow_http.charset, which the CLI's
backfill and reparse use too."""

from newsflow_http.charset import charset_from_header, charset_from_meta, decode_html, normalise_label

__all__ = ["charset_from_header", "charset_from_meta", "decode_html", "normalise_label"]
