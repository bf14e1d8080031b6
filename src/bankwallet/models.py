"""Every domain's tables, imported once so Alembic and tests see the whole schema."""

from bankwallet.core import audit as audit_models  # noqa: F401
from bankwallet.core import outbox as outbox_models  # noqa: F401
from bankwallet.core.db import Base
from bankwallet.identity import models as identity_models  # noqa: F401
from bankwallet.ledger import models as ledger_models  # noqa: F401
from bankwallet.notifications import models as notifications_models  # noqa: F401

metadata = Base.metadata
