"""The Tencent Cloud SMS adapter, offline: its requests carry a signature the provider's rule accepts,
and each kind of failure maps to "retry" or "give up"."""

from __future__ import annotations

import pytest

from services.kit.sms import SmsFailed, SmsMessage, TencentConfig
from services.kit.tencent_sms import TencentSms, is_retryable
from services.notify.domain import Language
from tests.notify.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent, fake_tencent

MESSAGE = SmsMessage("delivery-7", "13812345678", Language.zh, "护理预约已取消", "请不要前往。")


def adapter(fake: FakeTencent, *, secret_key: str = SECRET_KEY, timeout_s: float = 5.0) -> TencentSms:
    config = TencentConfig(
        secret_id=SECRET_ID,
        secret_key=secret_key,
        region="ap-guangzhou",
        sdk_app_id="1400000000",
        sign_name="未来社区",
        template_zh="100001",
        template_en="100002",
        endpoint=fake.endpoint,
        scheme="http",
        timeout_s=timeout_s,
    )
    return TencentSms(config)


async def test_a_message_is_sent_as_a_signed_sendsms_request_with_the_readers_template() -> None:
    with fake_tencent("ok") as fake:
        await adapter(fake).send(MESSAGE)
        await adapter(fake).send(SmsMessage("delivery-8", "+8613900001111", Language.en, "Points earned", "You earned 5 points."))
    first, second = fake.requests
    assert first["signed"] and second["signed"] and fake.bad_signatures == 0
    assert first["headers"]["X-TC-Action"] == "SendSms" and first["headers"]["X-TC-Version"] == "2021-01-11"
    body = first["body"]
    assert body["PhoneNumberSet"] == ["+8613812345678"] and body["TemplateId"] == "100001"
    assert body["TemplateParamSet"] == ["护理预约已取消", "请不要前往。"] and body["SessionContext"] == "delivery-7"
    assert body["SmsSdkAppId"] == "1400000000" and body["SignName"] == "未来社区"
    assert second["body"]["PhoneNumberSet"] == ["+8613900001111"] and second["body"]["TemplateId"] == "100002"


async def test_a_request_signed_with_the_wrong_key_is_refused_and_not_retried() -> None:
    with fake_tencent("ok") as fake:
        with pytest.raises(SmsFailed) as failed:
            await adapter(fake, secret_key="not-the-key").send(MESSAGE)
    assert fake.bad_signatures == 1
    assert failed.value.reason.startswith("AuthFailure.SignatureFailure") and not failed.value.retryable


@pytest.mark.parametrize(
    ("answer", "reason", "retryable"),
    [
        ("InternalError.Timeout", "InternalError.Timeout", True),
        ("RequestLimitExceeded", "RequestLimitExceeded", True),
        ("LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberDailyLimit", True),
        ("FailedOperation.InsufficientBalanceInSmsPackage", "FailedOperation.InsufficientBalanceInSmsPackage", False),
        ("InvalidParameterValue.IncorrectPhoneNumber", "InvalidParameterValue.IncorrectPhoneNumber", False),
        ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "UnauthorizedOperation.SmsSdkAppIdVerifyFail", False),
        ("status:LimitExceeded.PhoneNumberOneHourLimit", "LimitExceeded.PhoneNumberOneHourLimit", True),
        ("status:InvalidParameterValue.IncorrectPhoneNumber", "InvalidParameterValue.IncorrectPhoneNumber", False),
    ],
)
async def test_provider_errors_map_to_retry_or_give_up_without_the_phone_number(
    answer: str, reason: str, retryable: bool
) -> None:
    with fake_tencent(answer) as fake:
        with pytest.raises(SmsFailed) as failed:
            await adapter(fake).send(MESSAGE)
    assert failed.value.reason.startswith(reason) and failed.value.retryable is retryable
    assert "13812345678" not in failed.value.reason


async def test_a_provider_that_does_not_answer_in_time_is_a_retryable_timeout() -> None:
    with fake_tencent("hang") as fake:
        with pytest.raises(SmsFailed) as failed:
            await adapter(fake, timeout_s=0.3).send(MESSAGE)
    assert failed.value.retryable and failed.value.reason.startswith("timeout")


def test_only_code_families_a_later_try_cannot_fix_are_final() -> None:
    assert is_retryable("InternalError") and is_retryable("ClientNetworkError") and is_retryable("SomethingNew.Odd")
    assert not is_retryable("AuthFailure.SecretIdNotFound") and not is_retryable("MissingParameter")
