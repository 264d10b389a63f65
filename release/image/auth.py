"""Registry credentials: Basic from RELEASE_REGISTRY_USERNAME / RELEASE_REGISTRY_PASSWORD,
ECR's from boto3 `get_authorization_token`, and the Bearer token a registry's
`WWW-Authenticate` challenge asks for (fetched with those Basic credentials)."""

from __future__ import annotations

import base64
import logging
import os
import re
from typing import Any, Protocol

from release.errors import RemoteError

log = logging.getLogger(__name__)


class Auth(Protocol):
    """Where a registry's Basic credentials come from (None: anonymous)."""

    def basic(self) -> tuple[str, str] | None: ...


class EnvAuth:
    """RELEASE_REGISTRY_USERNAME / RELEASE_REGISTRY_PASSWORD, when both are set."""

    def basic(self) -> tuple[str, str] | None:
        user = os.environ.get("RELEASE_REGISTRY_USERNAME")
        pw = os.environ.get("RELEASE_REGISTRY_PASSWORD")
        return (user, pw) if user and pw is not None else None


class EcrAuth:
    """ECR's registry password from boto3 `get_authorization_token` (12 h lifetime)."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self._cached: tuple[str, str] | None = None

    def basic(self) -> tuple[str, str] | None:
        if self._cached is None:
            import boto3
            import botocore.exceptions

            try:
                ecr = boto3.client("ecr", region_name=self.region)
                data = ecr.get_authorization_token(registryIds=[self.account])
                token = data["authorizationData"][0]["authorizationToken"]
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise RemoteError(
                    f"ECR get_authorization_token for {self.account} in {self.region} failed: "
                    f"{exc}; check AWS credentials"
                ) from None
            user, _, pw = base64.b64decode(token).decode().partition(":")
            self._cached = (user, pw)
        return self._cached


def authorization(auth: Auth, token: str | None) -> str | None:
    """The `Authorization` header value: the Bearer token once there is one, else Basic."""
    if token:
        return f"Bearer {token}"
    b = auth.basic()
    if b is None:
        return None
    return "Basic " + base64.b64encode(f"{b[0]}:{b[1]}".encode()).decode()


def bearer_token(session: Any, challenge: str, repo: str, auth: Auth) -> str | None:
    """Answer a `WWW-Authenticate: Bearer realm=...,service=...` challenge: a token for
    pull and push on `repo` from the realm, or None when it is not a Bearer challenge or
    the token service says no (the caller reports the 401)."""
    if not challenge.lower().startswith("bearer"):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        return None
    params.setdefault("scope", f"repository:{repo}:pull,push")
    import requests

    try:
        r = session.get(realm, params=params, auth=auth.basic(), timeout=(10, 60))
    except requests.RequestException as exc:
        raise RemoteError(f"registry token service {realm} failed: {exc}") from None
    if r.status_code != 200:
        log.debug("token service %s answered HTTP %s", realm, r.status_code)
        return None
    body = r.json()
    token = body.get("token") or body.get("access_token")
    return str(token) if token else None
