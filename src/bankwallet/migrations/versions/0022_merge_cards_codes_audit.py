"""merge card payments (0019), consumer payment codes (0020) and the deferred audit chain (0021)

Revision ID: 0022
Revises: 0019, 0020, 0021
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0022"
down_revision = ("0019", "0020", "0021")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
