"""The notifier tests' fixtures. They live in `notifier_helpers.py` with the helpers the tests import: a test
module imports a uniquely named module, never `conftest`, which is a different file in every folder."""

from notifier_helpers import parts, ready, receiver, smtp_server  # noqa: F401
