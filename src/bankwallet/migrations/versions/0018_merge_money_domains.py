"""merge the domains built side by side on 0010: funding (0011), transfers (0012), fx (0013),
notification preferences (0014), chains (0015), cards (0016), payments (0017)

Revision ID: 0018
Revises: 0011, 0012, 0013, 0014, 0015, 0016, 0017
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0018"
down_revision = ("0011", "0012", "0013", "0014", "0015", "0016", "0017")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
