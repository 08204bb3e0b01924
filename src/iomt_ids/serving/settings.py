"""Settings of the scoring service, read from the environment (prefix ``IOMT_IDS_``).

=========================  ==========================  ==========================================
environment variable       field                       meaning
=========================  ==========================  ==========================================
``IOMT_IDS_API_KEY``       ``api_key``                 key required in ``X-API-Key``; unset = open
``IOMT_IDS_MAX_ROWS``      ``max_rows``                most rows in one ``/v1/predict`` body
``IOMT_IDS_MAX_BODY_BYTES`` ``max_body_bytes``         most bytes in one request body
``IOMT_IDS_CORS_ORIGINS``  ``cors_origins``            comma-separated origins; empty = CORS off
``IOMT_IDS_DOCS``          ``docs``                    ``false`` = no ``/docs``, ``/redoc``, ``/openapi.json``
=========================  ==========================  ==========================================
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ServeSettings"]


class ServeSettings(BaseSettings):
    """Limits and security switches of the scoring service.

    Attributes
    ----------
    api_key : SecretStr or None
        When set, every route but ``/healthz`` and the dashboard page (``/`` and its
        script and style; its data, ``/api/dashboard``, does need it) needs this key in the ``X-API-Key``
        header (compared in constant time). ``None`` or an empty string leaves the service open.
    max_rows : int
        Largest batch ``/v1/predict`` accepts; larger batches get 413.
    max_body_bytes : int
        Largest request body in bytes; larger bodies get 413 before they are parsed.
    cors_origins : list of str
        Origins allowed by CORS. Empty (the default) adds no CORS middleware at all.
    docs : bool
        Serve ``/docs``, ``/redoc`` and ``/openapi.json`` (default). They need the API
        key like the other routes when one is set; ``False`` (``iomt-ids serve --no-docs``)
        removes them (404).

    Examples
    --------
    >>> ServeSettings(max_rows=10).max_rows
    10
    """

    model_config = SettingsConfigDict(env_prefix="IOMT_IDS_", frozen=True, extra="ignore")

    api_key: SecretStr | None = None
    max_rows: int = Field(default=1024, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=64, le=1024 * 1024 * 1024)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docs: bool = True

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
