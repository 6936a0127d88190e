"""Parking's payment port: the kit's (`services.kit.payments`), which property's payments use too."""

from __future__ import annotations

from services.kit.payments import DECLINING_METHOD, FakePaymentProvider, PaymentProvider, PaymentResult, provider_for

__all__ = ["DECLINING_METHOD", "FakePaymentProvider", "PaymentProvider", "PaymentResult", "provider_for"]
