"""A circuit breaker per upstream: fail fast while a service keeps failing, try again after a while."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import Gauge

from gateway.problems import CircuitOpen

log = logging.getLogger("gateway.proxy")

BREAKER_OPEN = Gauge("gateway_circuit_open", "1 while the upstream's circuit breaker is open", ["upstream"])


class BreakerState:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    """Opens after `threshold` failures in a row; after `open_s` lets one trial request through.

    Kept per process, like Envoy's outlier detection: each replica learns an upstream's health
    from its own traffic, which needs no coordination and costs nothing on the request path.
    """

    name: str
    threshold: int
    open_s: float
    failures: int = 0
    state: str = BreakerState.CLOSED
    opened_at: float = 0.0
    trial_running: bool = False

    def before(self) -> None:
        if self.state == BreakerState.CLOSED:
            return
        if self.state == BreakerState.OPEN and time.monotonic() - self.opened_at >= self.open_s:
            self.state = BreakerState.HALF_OPEN
            self.trial_running = False
        if self.state == BreakerState.HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return
        retry_after = max(1, round(self.open_s - (time.monotonic() - self.opened_at)))
        raise CircuitOpen(
            (f"{self.name} 服务暂时熔断", f"{self.name} is cut off after repeated failures"),
            headers={"Retry-After": str(retry_after)},
            upstream=self.name,
        )

    def abandon_trial(self) -> None:
        self.trial_running = False

    def success(self) -> None:
        if self.state != BreakerState.CLOSED:
            log.info("circuit for %s closed again", self.name)
            BREAKER_OPEN.labels(self.name).set(0)
        self.state, self.failures, self.trial_running = BreakerState.CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.state == BreakerState.HALF_OPEN or self.failures >= self.threshold:
            if self.state != BreakerState.OPEN:
                log.warning("circuit for %s opened after %d failures", self.name, self.failures)
            self.state, self.opened_at, self.trial_running = BreakerState.OPEN, time.monotonic(), False
            BREAKER_OPEN.labels(self.name).set(1)
