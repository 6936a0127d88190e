"""The SMS port (`services/kit/sms.py`) on Tencent Cloud SMS (`tencentcloud-sdk-python-sms`, API 2021-01-11).

The SDK signs each request (TC3-HMAC-SHA256) and is synchronous, so a send runs in a worker
thread with the configured timeout. The provider sends only templates registered with it: one per
language, with the message's title and body as its two parameters. Errors are mapped to
"try again" or "give up now" by the code's family, as the provider documents them.
"""

from __future__ import annotations

import asyncio

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from services.kit.sms import SmsFailed, SmsMessage, TencentConfig, mask_phones

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


class TencentSms:
    def __init__(self, config: TencentConfig) -> None:
        self.config = config
        http = HttpProfile(protocol=config.scheme, endpoint=config.endpoint or None, reqTimeout=max(1, int(config.timeout_s)))
        self.client = sms_client.SmsClient(
            credential.Credential(config.secret_id, config.secret_key), config.region, ClientProfile(httpProfile=http)
        )

    def request_for(self, message: SmsMessage) -> models.SendSmsRequest:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [message.phone if message.phone.startswith("+") else "+86" + message.phone]
        request.SmsSdkAppId = self.config.sdk_app_id
        request.SignName = self.config.sign_name
        request.TemplateId = self.config.template_en if message.language == "en" else self.config.template_zh
        request.TemplateParamSet = [message.title, message.body]
        request.SessionContext = message.reference
        return request

    async def send(self, message: SmsMessage) -> None:
        request = self.request_for(message)
        try:
            response = await asyncio.wait_for(asyncio.to_thread(self.client.SendSms, request), self.config.timeout_s)
        except TimeoutError:
            raise SmsFailed("timeout: the provider did not answer in time", retryable=True) from None
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "ClientError")
            raise SmsFailed(f"{code}: {mask_phones(str(exc.get_message()))}", retryable=is_retryable(code)) from None
        statuses = response.SendStatusSet or []
        if not statuses:
            raise SmsFailed("EmptyResponse: the provider reported no send status", retryable=True)
        status = statuses[0]
        if status.Code != "Ok":
            # The provider's per-number message may echo the number: keep the code only.
            raise SmsFailed(f"{status.Code}", retryable=is_retryable(str(status.Code)))
