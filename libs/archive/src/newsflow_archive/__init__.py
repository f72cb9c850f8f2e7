"""Newsflow's WARC archive (ISO 28500): see docs/ARCHIVE.md."""
