"""bankwallet: an open-source digital wallet a bank runs for its customers."""

__version__ = "0.1.0"
