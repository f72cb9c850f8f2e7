"""Alerting logic shared by the notifier, the CLI and the web app (see docs/ALERTING.md)."""
