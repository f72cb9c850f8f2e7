"""`newsflow parse FILE --url URL`: run the parser's extraction on one saved page and print the article.

The operator's tool for debugging one site: the same code the parser service runs, without Redis.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def _read(file: str) -> str:
    from trafilatura.utils import decode_file

    data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: the page's own <meta charset>, else a detected one (as trafilatura reads files).
        decoded = decode_file(data)
        return decoded if isinstance(decoded, str) else decoded.decode("utf-8", errors="replace")


def parse(
    file: str = typer.Argument(..., help="A saved HTML page, or - to read it from stdin."),
    url: str = typer.Option(..., "--url", help="The page's URL (its canonical form is the article id)."),
    min_words: int | None = typer.Option(None, "--min-words", help="Fewer words: not an article."),
    compact: bool = typer.Option(False, "--compact", help="One line of JSON instead of indented."),
) -> None:
    """Extract text, captions and metadata from one HTML page and print the article as JSON."""
    from newsflow_extract.errors import ExtractionError
    from newsflow_extract.extract import MIN_ARTICLE_WORDS, extract
    from newsflow_shared.urls import canonicalize

    try:
        html = _read(file)
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        canonical = canonicalize(url)
    except ValueError as exc:
        typer.echo(f"not a usable URL: {url} ({exc})", err=True)
        raise typer.Exit(2) from exc
    try:
        article = extract(
            html,
            canonical,
            final_url=url if url != canonical else None,
            min_words=MIN_ARTICLE_WORDS if min_words is None else min_words,
        )
    except ExtractionError as exc:
        typer.echo(json.dumps({"error": exc.reason, "message": exc.message}), err=True)
        raise typer.Exit(1) from exc
    typer.echo(article.model_dump_json(indent=None if compact else 2))
