"""Every domain's tables, imported once so Alembic and tests see the whole schema."""

import importlib

from bankwallet.core import audit as audit_models  # noqa: F401
from bankwallet.core import idempotency as idempotency_models  # noqa: F401
from bankwallet.core import outbox as outbox_models  # noqa: F401
from bankwallet.core.db import Base
from bankwallet.domains import DOMAINS
from bankwallet.payments import code_models as consumer_code_models  # noqa: F401

for _domain in DOMAINS:
    try:
        importlib.import_module(f"bankwallet.{_domain}.models")
    except ModuleNotFoundError as exc:
        if exc.name not in (f"bankwallet.{_domain}", f"bankwallet.{_domain}.models"):
            raise  # a domain's models failed to import something: say so

metadata = Base.metadata
