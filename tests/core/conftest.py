"""Fixtures of the core tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "_bankwallet", False)]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``configure_logging`` (and so ``create_app``) swaps the root handler it owns and sets the
    root level: put both back, so no handler outlives the captured stream it was bound to.
    Only bankwallet's handlers are touched; pytest swaps its own per test phase."""
    root = logging.getLogger()
    before, level = _ours(root), root.level
    yield
    for handler in _ours(root):
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    for handler in before:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
