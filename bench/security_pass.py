"""Offline pass verification per second (the full check a door runs: parse, key lookup, Ed25519
signature, community, window, revocation list, entry count), beside a bare Ed25519 verify of the
same bytes with the same library (`cryptography`), in the same run. Target: ≥ 0.5 × bare.

    make bench NAME=security_pass        # BENCH_PASSES (default 20000)
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.harness import record
from services.security.pass_tokens import OfflineVerifier, PassClaims, sign_pass, unb64

PASSES = int(os.environ.get("BENCH_PASSES", 20_000))


async def main() -> None:
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    window = (int((now - timedelta(hours=1)).timestamp()), int((now + timedelta(hours=1)).timestamp()))
    tokens = [sign_pass(PassClaims(f"vp-{i:08d}", "c1", "b1", "k1", window[0], window[1], 2), key) for i in range(PASSES)]
    verifier = OfflineVerifier(community="c1", keys={"k1": key.public_key()}, revoked={f"vp-x{i}" for i in range(1000)})
    start = time.perf_counter()
    for token in tokens:
        verifier.admit(token, now)
    full_rate = PASSES / (time.perf_counter() - start)

    public = key.public_key()
    pairs = []
    for token in tokens:
        body, signature = token.split(".")
        pairs.append((body.encode(), unb64(signature)))
    start = time.perf_counter()
    for body_bytes, raw in pairs:
        public.verify(raw, body_bytes)
    bare_rate = PASSES / (time.perf_counter() - start)
    record(
        "security_pass_offline_verify",
        full_rate,
        "passes/s",
        "bare_ed25519_verify",
        bare_rate,
        higher_is_better=True,
        target="≥ 0.5 × bare",
        extra={"passes": PASSES, "revocation_list": 1000, "token_chars": len(tokens[0])},
    )


if __name__ == "__main__":
    asyncio.run(main())
