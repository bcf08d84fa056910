"""``umlaut bundle inspect``: read and check a bundle without unpickling it."""

from __future__ import annotations

import hashlib
import hmac
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .context import CliContext, CliError
from .output import emit_object, format_option, plain

if TYPE_CHECKING:
    pass

__all__ = ["bundle", "check_bundle"]

# Member names of the bundle format (umlaut_core.packer, BUNDLE_FORMAT 1).
_MANIFEST, _PAYLOAD, _SIGNATURE = "MANIFEST.json", "payload.pkl", "SIGNATURE"


def check_bundle(data: bytes, signing_key: bytes | None) -> dict[str, Any]:
    """What a bundle says and whether it holds together; nothing is unpickled.

    The payload is hashed as bytes, the digest recomputed from the manifest, and the
    signature (an HMAC-SHA256 of the manifest) checked when a key is given.
    """
    from ..packer import compute_digest, read_manifest

    manifest = read_manifest(data)  # IntegrityError for a file that is not a bundle
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        payload = zf.read(_PAYLOAD) if _PAYLOAD in names else None
        raw_manifest = zf.read(_MANIFEST)
        signature = zf.read(_SIGNATURE) if _SIGNATURE in names else None
    recomputed = compute_digest(manifest)
    payload_ok = payload is not None and (
        hashlib.sha256(payload).hexdigest() == manifest.get("payload_sha256")
    )
    if signature is None:
        signed = "absent"
    elif signing_key is None:
        signed = "present (no signing key configured to check it)"
    else:
        mac = hmac.new(signing_key, raw_manifest, hashlib.sha256).hexdigest().encode()
        signed = "valid" if hmac.compare_digest(signature, mac) else "INVALID"
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "digest": manifest.get("digest"),
        "digest_recomputed": recomputed,
        "digest_ok": recomputed == manifest.get("digest"),
        "payload_ok": payload_ok,
        "signature": signed,
        "manifest": manifest,
    }


@click.group()
def bundle() -> None:
    """Bundles: inspect one, from a file or from the store."""


@bundle.command("inspect")
@click.argument("target", metavar="FILE|NAME@VERSION")
@format_option()
@click.pass_obj
def inspect(state: CliContext, target: str, fmt: str) -> None:
    """Show a bundle's manifest and check it: file sha256, payload hash, digest, and
    the signature when a signing key is configured. Never unpickles.

    TARGET is a bundle file, or NAME@VERSION for a stored version (VERSION may also be
    a stage: NAME@Production). Exits with status 1 when a check fails.
    """
    path = Path(target)
    obj: dict[str, Any] = {"source": target}
    if path.is_file():
        report = check_bundle(path.read_bytes(), state.settings.signing_key)
        obj.update(report)
    elif "@" in target:
        name, _, selector = target.rpartition("@")
        umlaut = state.umlaut()
        if selector.isdigit():
            mv = umlaut.get_version(name, version=int(selector))
        else:
            mv = umlaut.get_version(name, stage=selector)
        report = check_bundle(umlaut.fetch_bundle(mv), umlaut.settings.signing_key)
        registered_sha = mv.bundle_sha256
        obj.update(
            {
                "model_name": mv.name,
                "version": mv.version,
                "artifact_uri": mv.artifact_uri,
                "registered_digest": mv.digest,
                "registered_digest_ok": mv.digest == report["digest_recomputed"],
                "registered_sha256_ok": (
                    None
                    if registered_sha is None
                    else registered_sha.split(":", 1)[-1].lower() == report["sha256"]
                ),
            }
        )
        obj.update(report)
    else:
        raise click.BadParameter(
            f"{target!r} is neither a file nor NAME@VERSION", param_hint="FILE|NAME@VERSION"
        )
    emit_object(plain(obj), fmt)
    failed = [
        key
        for key in ("digest_ok", "payload_ok", "registered_digest_ok", "registered_sha256_ok")
        if obj.get(key) is False
    ]
    if obj["signature"] == "INVALID":
        failed.append("signature")
    if failed:
        raise CliError(
            f"{target}: {', '.join(failed)} failed; the bundle was changed or swapped, "
            f"do not load it (restore it or re-track the model)",
            label="IntegrityError",
        )
