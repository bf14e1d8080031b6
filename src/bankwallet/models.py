"""Every domain's tables, imported once so Alembic and tests see the whole schema."""

from bankwallet.core.db import Base
from bankwallet.ledger import models as ledger_models  # noqa: F401

metadata = Base.metadata
