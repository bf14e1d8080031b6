"""Ledger transfer codes: why money moved. One table for every domain, so history and
statements can name each movement. Ranges: 1xxx funding, 2xxx between customers, 3xxx
payments and cards, 4xxx exchange, 9xxx the bank's fees and corrections."""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    TOPUP = 1001
    WITHDRAWAL = 1002
    TOPUP_REVERSAL = 1003
    WITHDRAWAL_RETURN = 1004
    P2P = 2001
    REQUEST_PAYMENT = 2002
    PAYMENT = 3001
    PAYMENT_FEE = 3002
    REFUND = 3003
    CARD_PAYMENT = 3004
    SETTLEMENT = 3005
    FX_SELL = 4001
    FX_BUY = 4002
    FEE = 9001
    CORRECTION = 9002


KIND_OF_CODE: dict[int, str] = {
    Code.TOPUP: "topup", Code.WITHDRAWAL: "withdrawal", Code.TOPUP_REVERSAL: "topup_reversal",
    Code.WITHDRAWAL_RETURN: "withdrawal_return", Code.P2P: "p2p",
    Code.REQUEST_PAYMENT: "p2p", Code.PAYMENT: "payment", Code.PAYMENT_FEE: "fee",
    Code.REFUND: "refund", Code.CARD_PAYMENT: "payment", Code.SETTLEMENT: "settlement",
    Code.FX_SELL: "exchange", Code.FX_BUY: "exchange", Code.FEE: "fee",
    Code.CORRECTION: "correction",
}
assert set(KIND_OF_CODE) == set(Code)
