"""What `make run` tells a newcomer once everything is up: where each part answers, and how to log in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.local import demo_community as demo

if TYPE_CHECKING:
    from deploy.local.stack import Stack


def print_welcome(stack: Stack, local: Path, has_gateway: bool) -> None:
    """The banner `make run` prints once the stack is up with its demo data, and the demo tokens."""
    tokens = {
        "resident (王秀英, elder)": stack.token_for(demo.resident("王秀英").id, list(demo.resident("王秀英").roles)),
        "resident (刘晓燕, volunteer)": stack.token_for(demo.resident("刘晓燕").id, list(demo.resident("刘晓燕").roles)),
        "steward (吴管家)": stack.token_for(demo.staff("steward.wu").id, ["steward"]),
        "community worker (冯社工)": stack.token_for(demo.staff("worker.feng").id, ["community_worker"]),
        "property admin (钱经理)": stack.token_for(demo.staff("admin.qian").id, ["property_admin"]),
        "security guard (蒋保安)": stack.token_for(demo.staff("guard.jiang").id, ["security_guard"]),
    }
    (local / "demo-tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=2))
    print()
    print("=" * 78)
    print(f"  {demo.COMMUNITY_NAME} is up.")
    if has_gateway:
        print(f"  Gateway      http://127.0.0.1:{stack.gateway_port}   (OpenAPI: /docs, /redoc, /openapi.json)")
        print(f"  Console      http://127.0.0.1:{stack.gateway_port}/console/   (steward.wu / demo-steward-1)")
        print("               (community workers: worker.feng / demo-worker, worker.he / demo-worker-2)")
        guard = demo.staff("guard.jiang")
        print(f"  Security     /api/security/alarms, /expected-visitors as the guard {guard.username} / {guard.password}")
        print(
            f"               {demo.VISITOR_HOST}'s visitor car {demo.VISITOR_PLATE} has a pass this week: "
            "the north gate (gate-north) lets it in without a booking"
        )
    for proc in stack.procs:
        if proc.name != "gateway":
            print(f"  {proc.name:<12} http://127.0.0.1:{proc.port}   (/openapi.json, /readyz, /metrics)")
    print(f"  Logs         {local}/<service>.log")
    if any(proc.name == "notify" for proc in stack.procs):
        print(f"  SMS (local)  {local}/notify-sms.log   (the local SMS port: notify's messages, login codes)")
    print(f"  Demo tokens (valid 1 h) are in {local / 'demo-tokens.json'}. For example, as 王秀英 (an elder):")
    tokens_path = local / "demo-tokens.json"
    pick = f"import json;print(json.load(open('{tokens_path}'))['resident (王秀英, elder)'])"
    print(f'    export TOKEN=$(python3 -c "{pick}")')
    base = f"http://127.0.0.1:{stack.gateway_port}" if has_gateway else "http://127.0.0.1:8001"
    prefix = "/api/timebank" if has_gateway else ""
    print(f'    curl -H "Authorization: Bearer $TOKEN" {base}{prefix}/members/me')
    if has_gateway:
        print(f'    curl -H "Authorization: Bearer $TOKEN" {base}/api/property/tickets')
        print("  Or log in as a resident app does (the one-time code is written to .local/notify-sms.log):")
        print(
            f"    curl -X POST {base}/auth/otp -H 'Content-Type: application/json' "
            f'-d \'{{"community":"{demo.COMMUNITY}","phone":"{demo.RESIDENTS[0].phone}"}}\''
        )
        print(
            f'    curl -X POST {base}/auth/token -H \'Content-Type: application/json\' -d \'{{"grant_type":"otp",'
            f'"community":"{demo.COMMUNITY}","phone":"{demo.RESIDENTS[0].phone}","code":"<code>"}}\''
        )
        wu = demo.staff("steward.wu")
        print("  Staff log in with a password and their community (all demo logins are in README.md):")
        print(
            f'    curl -X POST {base}/auth/token -H \'Content-Type: application/json\' -d \'{{"grant_type":"password",'
            f'"community":"{demo.COMMUNITY}","username":"{wu.username}","password":"{wu.password}"}}\''
        )
    print("  Stop with Ctrl-C, or `make stop` from another terminal.")
    print("=" * 78, flush=True)
