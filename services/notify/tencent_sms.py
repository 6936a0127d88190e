"""The SMS port on Tencent Cloud SMS (`tencentcloud-sdk-python-sms`, API 2021-01-11).

The SDK signs each request (TC3-HMAC-SHA256) and is synchronous, so a send runs in a worker
thread with the configured timeout. The provider sends only templates registered with it: one per
language, with the notification's title and body as its two parameters. Errors are mapped to
"try again" or "give up now" by the code's family, as the provider documents them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from services.notify.channels import SmsFailed, SmsMessage
from services.notify.domain import Language, redact
from services.notify.settings import Settings

# Code families (the part before the first dot) a later try cannot fix: the request or the
# account is wrong, and an operator has to act.
PERMANENT = frozenset(
    {
        "AuthFailure",
        "InvalidParameter",
        "InvalidParameterValue",
        "MissingParameter",
        "UnauthorizedOperation",
        "UnsupportedOperation",
        "FailedOperation",
        "UnknownParameter",
    }
)


def is_retryable(code: str) -> bool:
    """InternalError, RequestLimitExceeded, LimitExceeded.*, network errors and unknown codes: retry."""
    return code.split(".", 1)[0] not in PERMANENT


@dataclass(frozen=True)
class TencentConfig:
    secret_id: str
    secret_key: str
    region: str
    sdk_app_id: str
    sign_name: str
    template_zh: str
    template_en: str
    endpoint: str = ""
    scheme: str = "https"
    timeout_s: float = 5.0


class TencentSms:
    def __init__(self, config: TencentConfig) -> None:
        self.config = config
        http = HttpProfile(protocol=config.scheme, endpoint=config.endpoint or None, reqTimeout=max(1, int(config.timeout_s)))
        self.client = sms_client.SmsClient(
            credential.Credential(config.secret_id, config.secret_key), config.region, ClientProfile(httpProfile=http)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TencentSms:
        return cls(
            TencentConfig(
                secret_id=settings.tencent_secret_id,
                secret_key=settings.tencent_secret_key,
                region=settings.tencent_region,
                sdk_app_id=settings.tencent_sms_sdk_app_id,
                sign_name=settings.tencent_sms_sign_name,
                template_zh=settings.tencent_sms_template_zh,
                template_en=settings.tencent_sms_template_en,
                endpoint=settings.tencent_endpoint,
                scheme=settings.tencent_scheme,
                timeout_s=settings.sms_timeout_s,
            )
        )

    def request_for(self, message: SmsMessage) -> models.SendSmsRequest:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [message.phone if message.phone.startswith("+") else "+86" + message.phone]
        request.SmsSdkAppId = self.config.sdk_app_id
        request.SignName = self.config.sign_name
        request.TemplateId = self.config.template_zh if message.language is Language.zh else self.config.template_en
        request.TemplateParamSet = [message.title, message.body]
        request.SessionContext = f"delivery-{message.delivery_id}"
        return request

    async def send(self, message: SmsMessage) -> None:
        request = self.request_for(message)
        try:
            response = await asyncio.wait_for(asyncio.to_thread(self.client.SendSms, request), self.config.timeout_s)
        except TimeoutError:
            raise SmsFailed("timeout: the provider did not answer in time", retryable=True) from None
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "ClientError")
            raise SmsFailed(f"{code}: {redact(str(exc.get_message()))}", retryable=is_retryable(code)) from None
        statuses = response.SendStatusSet or []
        if not statuses:
            raise SmsFailed("EmptyResponse: the provider reported no send status", retryable=True)
        status = statuses[0]
        if status.Code != "Ok":
            # The provider's per-number message may echo the number: keep the code only.
            raise SmsFailed(f"{status.Code}", retryable=is_retryable(str(status.Code)))
