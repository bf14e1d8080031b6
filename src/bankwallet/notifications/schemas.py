from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    title: str
    body: str
    created_at: dt.datetime
    read_at: dt.datetime | None


class MessageList(BaseModel):
    items: list[MessageRead]
    next_cursor: str | None  # pass back as ?cursor= for the next (older) page


class DevMessageRead(BaseModel):
    id: uuid.UUID
    channel: str
    to: str
    subject: str | None
    text: str
    created_at: dt.datetime


class DevMessageList(BaseModel):
    items: list[DevMessageRead]
