"""The gateway's own API models: logins, tokens, and the admin calls that set credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.kit.inputs import ClientId, RequestBody

Community = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Phone = Annotated[str, Field(min_length=5, max_length=20, pattern=r"^\+?[0-9]+$")]
MachineRole = Literal["city_sync", "gate_device"]


class CodeRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"community": "lishui-demo", "phone": "13800000001"}]})
    community: Community
    phone: Phone


class CodeSent(BaseModel):
    sent: bool = Field(description="Always true: whether the number is registered is not revealed")
    expires_in: int


class OtpGrant(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"grant_type": "otp", "community": "lishui-demo", "phone": "13800000001", "code": "123456"}]
        }
    )
    grant_type: Literal["otp"]
    community: Community
    phone: Phone
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]


class PasswordGrant(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"grant_type": "password", "community": "lishui-demo", "username": "steward.li", "password": "correct horse"}
            ]
        }
    )
    grant_type: Literal["password"]
    community: Community
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class ClientCredentialsGrant(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "grant_type": "client_credentials",
                    "community": "lishui-demo",
                    "client_id": "lishui-data",
                    "client_secret": "s3cret-s3cret-s3cret",
                }
            ]
        }
    )
    grant_type: Literal["client_credentials"]
    community: Community
    client_id: ClientId
    client_secret: Annotated[str, Field(min_length=1, max_length=200)]


class RefreshGrant(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"grant_type": "refresh_token", "refresh_token": "rt_0123456789abcdefghijklmnop"}]}
    )
    grant_type: Literal["refresh_token"]
    refresh_token: Annotated[str, Field(min_length=20, max_length=200)]


TokenRequest = Annotated[OtpGrant | PasswordGrant | ClientCredentialsGrant | RefreshGrant, Field(discriminator="grant_type")]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str | None = Field(None, description="Absent for client credentials")
    subject: str
    roles: list[str]
    community: str


class LogoutRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "rt_0123456789abcdefghijklmnop"}]})
    refresh_token: Annotated[str | None, Field(min_length=20, max_length=200)] = None


class Me(BaseModel):
    subject: str
    roles: list[str]
    community: str
    expires_at: int


class PasswordSet(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"password": "correct horse battery"}]})
    password: Annotated[str, Field(min_length=8, max_length=200)]


class ApiClientPut(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"roles": ["city_sync"], "secret": "s3cret-s3cret-s3cret"}]})
    roles: Annotated[list[MachineRole], Field(min_length=1, max_length=2)]
    secret: Annotated[str, Field(min_length=16, max_length=200)]


class ApiClientPublic(BaseModel):
    client_id: str
    subject: str
    roles: list[str]
    community: str


class Jwks(BaseModel):
    keys: list[dict[str, str]]


# --- communities (platform administrators) ------------------------------------------------------------

# The administrative division code (行政区划代码) the city's data platform files a community under.
RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="6-digit administrative division code", examples=["331102"])]
SettingKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
SettingValue = Annotated[str, Field(max_length=200)] | bool | int


class CommunityPut(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "白云未来社区", "region_code": "331102", "settings": {"timezone": "Asia/Shanghai"}, "active": True}
            ]
        }
    )
    name: Annotated[str, Field(min_length=1, max_length=100)]
    region_code: RegionCode
    settings: Annotated[dict[SettingKey, SettingValue], Field(max_length=50)] = Field(default_factory=dict)
    # False keeps the community's data but refuses its tokens on every gateway replica.
    active: bool = True


class CommunityPublic(BaseModel):
    id: str
    name: str
    region_code: str
    settings: dict[str, str | bool | int]
    active: bool
    created_at: datetime
    updated_at: datetime
