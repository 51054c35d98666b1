"""CLI commands ``safestream device ...`` (registered by ``cli`` from :data:`COMMANDS`).

This module must not import :mod:`safestream.cli`; ``ctx.obj`` (when present)
offers ``data_dir`` and ``repo()``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from safestream.cli_support import cli_errors
from safestream.errors import SafestreamError

EXIT_BLOCKED = 1
EXIT_ERROR = 2


_errors = cli_errors


def _device_dir(obj: Any, given: Path | None) -> Path:
    if given is not None:
        return given
    from safestream.store.db import default_data_dir

    data_dir = getattr(obj, "data_dir", None)
    return (data_dir or default_data_dir()) / "device"


def _hex_key(value: str) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SafestreamError("--public-key must be 64 hex characters (an Ed25519 public key)")
    return key


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where keys and the filter live. Default: <data dir>/device.",
)


@click.group("device")
def device() -> None:
    """On-device protection: keys, the signed filter, and checks against it."""


@device.command("keygen")
@_dir_option
@click.option(
    "--rotate", is_flag=True, help="Replace the OPRF secret (then publish a new filter at once)."
)
@click.option(
    "--rotate-signing-key",
    is_flag=True,
    help="Replace the signing key. Devices pin it: ship the new public key to them first.",
)
@click.pass_obj
def keygen(obj: Any, directory: Path | None, rotate: bool, rotate_signing_key: bool) -> None:
    """Create the OPRF secret and the Ed25519 signing key (0600 files) unless present."""
    from safestream.device.server import DeviceServer

    with _errors():
        info = DeviceServer(_device_dir(obj, directory)).keygen(
            rotate=rotate, rotate_signing=rotate_signing_key
        )
    click.echo(json.dumps(info, indent=2))


@device.command("publish")
@_dir_option
@click.option("--bank", "banks", multiple=True, required=True, help="Bank to include. Repeatable.")
@click.pass_obj
def publish(obj: Any, directory: Path | None, banks: tuple[str, ...]) -> None:
    """Build, sign and install a new filter version from the named banks."""
    from safestream.device.server import DeviceServer

    with _errors():
        if obj is None or not hasattr(obj, "repo"):
            raise SafestreamError("run this as 'safestream device publish' (needs the store)")
        published = DeviceServer(_device_dir(obj, directory)).publish_banks(obj.repo(), banks)
    click.echo(json.dumps(published.info(), indent=2))


@device.command("check")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@_dir_option
@click.option("--server", "server_url", default=None, help="Check against this server's filter.")
@click.option("--api-key", envvar="SAFESTREAM_API_KEY", default=None, help="Key for --server.")
@click.option("--public-key", default=None, help="Pinned Ed25519 key (hex); needed with --server.")
@click.option(
    "--single-segment",
    type=click.Choice(["allow", "warn", "block"]),
    default="warn",
    show_default=True,
    help="What one unconfirmed PDQ segment hit means.",
)
@click.pass_obj
def check(
    obj: Any,
    images: tuple[Path, ...],
    directory: Path | None,
    server_url: str | None,
    api_key: str | None,
    public_key: str | None,
    single_segment: str,
) -> None:
    """Check images as a device would; exit 1 when any is blocked."""
    from safestream.device.client import (
        DeviceGuard,
        Evaluator,
        FileFilterSource,
        FilterSource,
        HttpEvaluator,
        HttpFilterSource,
        LocalEvaluator,
    )
    from safestream.device.server import DeviceServer

    blocked = False
    with _errors():
        source: FilterSource
        evaluator: Evaluator
        if server_url:
            if not api_key or not public_key:
                raise SafestreamError("--server needs --api-key and --public-key (pin the key)")
            source = HttpFilterSource(server_url, api_key)
            evaluator = HttpEvaluator(server_url, api_key)
            pinned = _hex_key(public_key)
        else:
            local = DeviceServer(_device_dir(obj, directory))
            source = FileFilterSource(local.directory / local.FILTER)
            evaluator = LocalEvaluator(local)
            pinned = _hex_key(public_key) if public_key else local.public_key()
        guard = DeviceGuard(
            source, evaluator, pinned, single_segment_action=single_segment, offline_action="warn"
        )
        for path in images:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise SafestreamError(f"{path}: cannot be read ({exc})") from None
            decision = guard.check_image(data)
            blocked = blocked or decision.action == "block"
            click.echo(json.dumps({"file": str(path), **decision.to_dict()}))
    sys.exit(EXIT_BLOCKED if blocked else 0)


COMMANDS: list[click.Command] = [device]
