"""The indexer tests' fixtures. They live in `indexer_helpers.py` with the helpers the tests import: a test
module imports a uniquely named module, never `conftest`, which is a different file in every folder."""

from indexer_helpers import idx_settings, ready_es  # noqa: F401
