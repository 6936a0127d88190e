"""The README and the `make run` banner tell a newcomer what the code holds: every credential the demo
sets, how staff log in, the embedded servers' ports and the shape of a service."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.local import stack, welcome
from deploy.local.demo_community import CITY_SYNC_CLIENTS, COMMUNITY, GATE_DEVICES, SECURITY_DEVICES, STAFF, VISITOR_PLATE, Staff
from gateway.demo import client_secret

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
NUMBERS = "two|three|four|five|six|seven|eight|nine|ten"


def layout_section() -> str:
    return README.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_the_readme_counts_no_services() -> None:
    assert not re.search(rf"\b({NUMBERS}|\d+)\s+(async\s+)?services\b", README, re.IGNORECASE)


def test_every_service_and_its_port_is_listed() -> None:
    for name, port in stack.SERVICES:
        assert re.search(rf"`services/{name}`.*\| {port} \|", README), name
    assert f"| {stack.GATEWAY_PORT} |" in README


@pytest.mark.parametrize("member", STAFF, ids=lambda s: s.username)
def test_every_demo_staff_password_is_in_the_readme(member: Staff) -> None:
    username, password = member.username, member.password
    assert re.search(rf"`{re.escape(username)}`\s*/\s*`{re.escape(password)}`", README), username


@pytest.mark.parametrize("client_id", [c for c, _ in GATE_DEVICES + CITY_SYNC_CLIENTS] + [d[0] for d in SECURITY_DEVICES])
def test_every_demo_client_id_and_secret_is_in_the_readme(client_id: str) -> None:
    assert re.search(rf"`{re.escape(client_id)}`\s*/\s*`{re.escape(client_secret(client_id))}`", README), client_id


def test_the_readme_shows_a_password_login_with_its_community() -> None:
    logins = [line for line in README.splitlines() if '"grant_type":"password"' in line]
    assert logins and all(f'"community":"{COMMUNITY}"' in line for line in logins)


def test_the_embedded_servers_ports_are_stated() -> None:
    for variable, port in (("LOCAL_PG_PORT", 15432), ("LOCAL_REDIS_PORT", 16379), ("LOCAL_KAFKA_PORT", 19092)):
        assert f"{port}" in README and variable in README
        assert f'"{variable}", {port}' in (ROOT / "deploy" / "local" / "stack.py").read_text()


def test_the_layout_names_use_case_modules_not_a_service_module() -> None:
    layout = layout_section()
    assert "service.py" not in layout
    assert "use-case modules" in layout


def test_the_banner_shows_a_staff_password_login_with_its_community(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stack, "LOCAL", tmp_path)
    welcome.print_welcome(stack.Stack(), tmp_path, has_gateway=True)
    banner = capsys.readouterr().out
    login = next(line for line in banner.splitlines() if '"grant_type":"password"' in line)
    assert f'"community":"{COMMUNITY}"' in login and '"username":"steward.wu"' in login


def test_the_banner_names_the_demo_guard_and_the_visitor_car_the_gate_admits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stack, "LOCAL", tmp_path)
    welcome.print_welcome(stack.Stack(), tmp_path, has_gateway=True)
    banner = capsys.readouterr().out
    guard = next(s for s in STAFF if "security_guard" in s.roles)
    assert f"{guard.username} / {guard.password}" in banner
    assert VISITOR_PLATE in banner and VISITOR_PLATE in README
