"""The shared helpers: backoff, secret redaction, configuration errors."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from common.backoff import Backoff
from common.config import ConfigError, load_config
from common.files import write_atomically
from common.redact import SecretFilter, strip_credentials


def test_backoff_grows_to_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=1, factor=2, cap=60, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(60, 2**n) for n in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 60
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("rtsp://admin:s3cr%40t@10.0.0.5:554/main", "rtsp://10.0.0.5:554/main"),
        ("http://user@[fe80::1]:80/onvif", "http://[fe80::1]:80/onvif"),
        ("rtsp://10.0.0.5/main", "rtsp://10.0.0.5/main"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_secret_filter_masks_raw_and_encoded_forms(caplog: pytest.LogCaptureFixture) -> None:
    secrets = SecretFilter()
    secrets.add("p@ss word/1")
    logger = logging.getLogger("test.redact")
    handler_filter_records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_filter_records.append(record.getMessage())

    handler = Capture()
    handler.addFilter(secrets)
    logger.addHandler(handler)
    try:
        logger.warning("raw %s", "p@ss word/1")
        logger.warning("url rtsp://admin:p%40ss%20word%2F1@10.0.0.5/x")
        logger.warning("form p%40ss+word%2F1")
    finally:
        logger.removeHandler(handler)
    joined = "\n".join(handler_filter_records)
    assert "p@ss word/1" not in joined
    assert "p%40ss%20word%2F1" not in joined
    assert "p%40ss+word%2F1" not in joined
    assert "rtsp://10.0.0.5/x" in joined


class _Site(BaseModel):
    model_config = ConfigDict(extra="forbid")
    networks: list[str] = Field(default_factory=list)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = Field(default=8000, ge=1, le=65535)
    site: _Site = Field(default_factory=_Site)


def test_config_from_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('port = 9000\n[site]\nnetworks = ["10.0.0.0/24"]\n')
    cfg = load_config(_Config, path, "KT", environ={"KT_SITE__NETWORKS": '["192.0.2.0/24"]'})
    assert cfg.port == 9000
    assert cfg.site.networks == ["192.0.2.0/24"]


def test_config_errors_say_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_Config, None, "KT", environ={"KT_PORT": "99999", "KT_COLOUR": "red"})
    message = str(err.value)
    assert "port" in message and "KT_PORT" in message and "65535" in message
    assert "colour" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(_Config, "/nonexistent/x.toml", "KT", environ={})


def test_write_atomically_replaces_whole_files_with_their_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret.json"
    write_atomically(target, b"first", mode=0o600, durable=True)
    write_atomically(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"second"  # the failed write left the old content
    assert [p.name for p in target.parent.iterdir()] == ["secret.json"]  # and no temporary file
