"""The port to a money payment provider (WeChat Pay, Alipay, a bank) and the local fake behind it.

Use cases talk to `PaymentProvider`; the local stack and the tests plug in `FakePaymentProvider`,
which approves every charge except those made with the method "fake-decline". A real provider
would implement the same two calls. What may be charged, and for what, is each service's rule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

DECLINING_METHOD = "fake-decline"


@dataclass(frozen=True)
class PaymentResult:
    approved: bool
    provider_ref: str
    reason: str | None = None  # why the provider declined, when it says


class PaymentProvider(Protocol):
    name: str

    async def charge(self, *, reference: str, amount_fen: int, method: str) -> PaymentResult: ...

    async def refund(self, *, reference: str, amount_fen: int) -> PaymentResult: ...


class FakePaymentProvider:
    name = "fake"

    async def charge(self, *, reference: str, amount_fen: int, method: str) -> PaymentResult:
        if method == DECLINING_METHOD:
            return PaymentResult(False, "")
        return PaymentResult(True, f"fake-{uuid.uuid4().hex[:16]}")

    async def refund(self, *, reference: str, amount_fen: int) -> PaymentResult:
        return PaymentResult(True, f"fake-refund-{uuid.uuid4().hex[:16]}")


def provider_for(name: str) -> PaymentProvider:
    if name == "fake":
        return FakePaymentProvider()
    raise ValueError(f"unknown payment provider {name}")
