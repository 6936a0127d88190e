"""Who the client is (gateway/clients.py) and how long it waits after wrong guesses (gateway/throttle.py), as tables."""

from __future__ import annotations

import pytest

from gateway.clients import forwarded_client, proxy_networks
from gateway.throttle import login_delay_s

PROXIES = proxy_networks(["10.42.0.0/16", "127.0.0.1/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # untrusted peer: its header is not believed
        ("10.42.3.4", [], "10.42.3.4"),  # a proxy that says nothing: the proxy
        ("10.42.3.4", ["198.51.100.1"], "198.51.100.1"),
        ("10.42.3.4", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # what the client wrote on the left is ignored
        ("10.42.3.4", ["6.6.6.6, 198.51.100.1, 10.42.0.9"], "198.51.100.1"),  # past every trusted hop
        ("10.42.3.4", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several header lines read as one list
        ("10.42.3.4", ["10.42.0.7, 10.42.0.9"], "10.42.0.7"),  # only proxies: the farthest one
        ("10.42.3.4", ["not-an-ip"], "10.42.3.4"),
        ("10.42.3.4", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_the_client_is_the_rightmost_address_no_trusted_proxy_holds(peer: str, forwarded_for: list[str], client: str) -> None:
    assert forwarded_client(peer, forwarded_for, PROXIES) == client


@pytest.mark.parametrize(("failures", "delay"), [(0, 0), (4, 0), (5, 1), (6, 2), (9, 16), (15, 900), (60, 900)])
def test_a_clients_wait_at_an_account_doubles_after_its_free_failures(failures: int, delay: float) -> None:
    assert login_delay_s(failures, free_failures=5, max_delay_s=900) == delay
