"""Login codes leave by the platform's SMS port (services/kit/sms.py), the one notify uses: locally a
line in the SMS file (the phone masked), with Tencent Cloud SMS a signed SendSms request; a provider
that fails is logged without the number, and the caller's answer does not change."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.settings import Settings
from tests.gateway.conftest import COMMUNITY, gateway_settings, random_phone, register_resident
from tests.notify.fake_tencent import SECRET_ID, SECRET_KEY, fake_tencent
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack

CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


@asynccontextmanager
async def gateway_with_sms(stack: TestStack, template: str, **sms: Any) -> AsyncIterator[RunningService]:
    """A gateway as the app builds it, its SMS port included (the shared fixture swaps the port out)."""
    url = await stack.empty_database("gateway", template=template)
    try:
        async with run_service(
            stack, "gateway", create_app, Settings, database_url=url, **gateway_settings(keys_dir=stack.keys_dir, **sms)
        ) as svc:
            yield svc
    finally:
        await stack.drop_database(url)


async def log_in(svc: RunningService, phone: str, code: str) -> int:
    r = await svc.client.post("/auth/token", json={"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": code})
    return r.status_code


async def test_a_login_code_goes_to_the_local_sms_file_with_the_phone_masked(
    stack: TestStack, gateway_template: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "sms.log"
    async with gateway_with_sms(stack, gateway_template, sms_outbox_path=str(outbox)) as gw:
        phone = random_phone()
        resident = await register_resident(gw, phone)
        with caplog.at_level(logging.DEBUG):
            assert (await gw.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})).status_code == 202
            unknown = random_phone()
            assert (await gw.client.post("/auth/otp", json={"community": COMMUNITY, "phone": unknown})).status_code == 202
        [line] = [json.loads(text) for text in outbox.read_text(encoding="utf-8").splitlines()]
        assert line["reference"] == f"login-{resident}"
        assert line["to"] == f"{phone[:3]}****{phone[-4:]}"
        assert phone not in outbox.read_text(encoding="utf-8") and unknown not in outbox.read_text(encoding="utf-8")
        [code] = CODE.findall(line["text"])
        assert "登录验证码" in line["text"] and "5 分钟" in line["text"]
        assert await log_in(gw, phone, code) == 200
        assert await log_in(gw, phone, code) == 401  # used once
    # Nor the code in any log line (as a number of its own: ids in the lines are hex).
    assert phone not in caplog.text and not re.search(rf"(?<![0-9a-f]){code}(?![0-9a-f])", caplog.text)


async def test_a_login_code_goes_through_tencent_cloud_sms_signed(stack: TestStack, gateway_template: str) -> None:
    with fake_tencent("ok") as fake:
        async with gateway_with_sms(
            stack,
            gateway_template,
            sms_provider="tencent",
            tencent_secret_id=SECRET_ID,
            tencent_secret_key=SECRET_KEY,
            tencent_sms_sdk_app_id="1400000001",
            tencent_sms_sign_name="未来社区",
            tencent_sms_template_zh="200001",
            tencent_sms_template_en="200002",
            tencent_endpoint=fake.endpoint,
            tencent_scheme="http",
        ) as gw:
            phone = random_phone()
            resident = await register_resident(gw, phone)
            assert (await gw.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})).status_code == 202
            [sent] = fake.requests
            body = sent["body"]
            assert sent["signed"] and fake.bad_signatures == 0
            assert body["PhoneNumberSet"] == ["+86" + phone] and body["TemplateId"] == "200001"
            assert body["SessionContext"] == f"login-{resident}" and body["SmsSdkAppId"] == "1400000001"
            title, text = body["TemplateParamSet"]
            [code] = CODE.findall(text)
            assert title == "登录验证码"
            assert await log_in(gw, phone, code) == 200


async def test_a_provider_that_fails_is_logged_without_the_number_and_the_answer_is_unchanged(
    stack: TestStack, gateway_template: str, caplog: pytest.LogCaptureFixture
) -> None:
    with fake_tencent("InternalError") as fake:
        async with gateway_with_sms(
            stack,
            gateway_template,
            sms_provider="tencent",
            tencent_secret_id=SECRET_ID,
            tencent_secret_key=SECRET_KEY,
            tencent_sms_sdk_app_id="1400000001",
            tencent_sms_sign_name="未来社区",
            tencent_sms_template_zh="200001",
            tencent_sms_template_en="200002",
            tencent_endpoint=fake.endpoint,
            tencent_scheme="http",
        ) as gw:
            phone = random_phone()
            resident = await register_resident(gw, phone)
            with caplog.at_level(logging.WARNING, logger="gateway.identity"):
                r = await gw.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
            assert r.status_code == 202 and len(fake.requests) == 1
    [failure] = [rec.getMessage() for rec in caplog.records if rec.name == "gateway.identity"]
    assert resident in failure and "InternalError" in failure
    assert phone not in caplog.text and f"{phone[:3]}****{phone[-4:]}" in failure
