"""A stage's secrets (admin token, cursor key): given directly, or read from an SSM SecureString and cached.

Local runs and tests set the secret itself (ADMIN_TOKEN, CURSOR_SECRET); deployed stages name an SSM
SecureString parameter (ADMIN_TOKEN_PARAMETER, CURSOR_SECRET_PARAMETER). A parameter is read with
Powertools' SSMProvider on first use and cached for CACHE_SECONDS, so a rotation takes effect within
that time without a redeploy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import NoCredentialsError, NoRegionError
from pydantic import SecretStr

from chalicelib.process import runtime
from chalicelib.process.observability import logger
from chalicelib.storage import dynamo

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

CACHE_SECONDS = 300


class SecretUnavailable(Exception):
    """The parameter could not be read (missing, no permission, no network). `unconfigured`: why it never can be in
    this process (no AWS region or credentials at all: a plain `chalice local`), for the client; None otherwise."""

    def __init__(self, parameter: str, unconfigured: str | None = None) -> None:
        super().__init__(parameter)
        self.unconfigured = unconfigured


def _ssm_provider() -> SSMProvider:
    # Imported on the first secret read, not at start: the parameters utility costs a cold start ~25 ms.
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    # The provider caches the values it read; runtime.reset() forgets it with the client.
    return runtime.cached("ssm_provider", lambda: SSMProvider(boto3_client=runtime.ssm()))


def value(direct: SecretStr | None, parameter: str | None) -> str | None:
    """The secret: `direct` if set, else the SSM parameter's value; None when neither is configured."""
    if direct is not None:
        return direct.get_secret_value()
    if not parameter:
        return None
    try:
        return str(_ssm_provider().get(parameter, max_age=CACHE_SECONDS, decrypt=True))
    except (NoRegionError, NoCredentialsError) as exc:
        # A configuration, not a failure: said to the client, logged without a traceback.
        logger.warning("cannot read a secret parameter", extra={"parameter": parameter, "cause": type(exc).__name__})
        raise SecretUnavailable(parameter, dynamo.unavailable_message(exc)) from exc
    except Exception as exc:
        logger.exception("cannot read a secret parameter", extra={"parameter": parameter})
        raise SecretUnavailable(parameter) from exc
