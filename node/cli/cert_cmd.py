"""``nxmesh cert list|show|upload|renew|delete``: certificates, their expiry and ACME state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.cli.client import Api, ApiError
from node.cli.common import (
    describe,
    echo_json,
    json_option,
    open_api,
    resolve,
    resolve_workspace,
    state_dir_option,
    table,
    warn_invalid,
    workspace_option,
)


def _base(ws: dict[str, Any]) -> str:
    return f"/v1/workspaces/{ws['id']}/certificates"


def human(seconds: float | None) -> str:
    """``89d 23h``, ``3h 12m``, ``45s``; ``expired 2d ago`` when negative."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return f"expired {human(-seconds)} ago"
    s = int(seconds)
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            rest = (s % size) // subsize
            return f"{s // size}{unit} {rest}{sub}" if rest else f"{s // size}{unit}"
    if s >= 60:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    return f"{s}s"


def _state(subject: dict[str, Any] | None) -> str:
    if subject is None:
        return "-"
    state = str(subject.get("state"))
    if subject.get("retry_in"):
        state += f" (retry in {human(subject['retry_in'])})"
    return state


@click.group()
def cert() -> None:
    """Certificates: ACME-issued (tls: acme vhosts) and uploaded (manual)."""


@cert.command(name="list")
@workspace_option
@state_dir_option
@json_option
def list_(workspace: str | None, state_dir: Path, as_json: bool) -> None:
    """List certificates with their expiry, and ACME orders (with their last error)."""
    with open_api(state_dir) as api:
        ws = resolve_workspace(api, workspace)
        listing = api.get(_base(ws))
        subjects = api.get(f"/v1/workspaces/{ws['id']}/acme")["items"]
    warn_invalid(listing, "certificate")
    certs = listing["items"]
    if as_json:
        echo_json({"certificates": certs, "acme": subjects})
        return
    by_names = {tuple(sorted(s["names"])): s for s in subjects}
    rows = []
    for c in sorted(certs, key=lambda c: (c.get("not_after") or "", c["name"])):
        subject = by_names.get(tuple(sorted(n.lower() for n in c["names"])))
        state = c["source"] if c["source"] == "manual" else _state(subject)
        if subject is not None and subject.get("certificate") not in (None, c["id"]):
            state = "superseded"
        rows.append(
            [c["name"], c["id"], c["source"], c["names"], (c.get("not_after") or "-")[:19],
             human(_expires_in(c)), state]
        )  # fmt: skip
    for s in subjects:
        if s.get("certificate") is None:
            rows.append(["(acme order)", "-", "acme", s["names"], "-", "-", _state(s)])
    table(("NAME", "ID", "SOURCE", "NAMES", "NOT AFTER", "EXPIRES IN", "STATE"), rows)
    for s in subjects:
        if s.get("error"):
            failures = s.get("failures") or 0
            click.echo(f"error ({','.join(s['names'])}, {failures} failures): {s['error']}")


def _expires_in(cert_: dict[str, Any]) -> float | None:
    from datetime import UTC, datetime

    value = cert_.get("not_after")
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime.now(UTC)).total_seconds()


@cert.command()
@click.argument("cert_ref", metavar="NAME|ID")
@workspace_option
@state_dir_option
@json_option
def show(cert_ref: str, workspace: str | None, state_dir: Path, as_json: bool) -> None:
    """Show one certificate: names, validity, expiry, ACME state, installed here."""
    with open_api(state_dir) as api:
        base = _base(resolve_workspace(api, workspace))
        entity = resolve(api, base, cert_ref, "certificate")
        status = api.get(f"{base}/{entity['id']}/status")
    if as_json:
        echo_json({**entity, "status": status})
        return
    shown = dict(entity)
    chain = shown.pop("chain_pem", None)
    shown["chain"] = f"{chain.count('BEGIN CERTIFICATE')} certificate(s)" if chain else "-"
    shown["expires_in"] = human(status.get("expires_in"))
    if status.get("renew_at"):
        from datetime import UTC, datetime

        shown["renews_at"] = datetime.fromtimestamp(status["renew_at"], UTC).isoformat()[:19]
    shown["installed_here"] = status.get("installed")
    if status.get("install_error"):
        shown["install_error"] = status["install_error"]
    acme = status.get("acme")
    if acme:
        shown["acme_state"] = acme.get("state")
        if acme.get("error"):
            shown["acme_error"] = acme["error"]
    describe(shown)


@cert.command()
@click.argument("name")
@click.option(
    "--cert", "cert_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="PEM file: the certificate, then its intermediates.",
)  # fmt: skip
@click.option(
    "--key", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="PEM file: its private key (unencrypted EC or RSA).",
)  # fmt: skip
@click.option("--replace", is_flag=True, help="Replace the key pair of the certificate NAME.")
@workspace_option
@state_dir_option
@json_option
def upload(
    name: str,
    cert_file: Path,
    key_file: Path,
    replace: bool,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Upload a manual certificate NAME (the key is sealed; every serving node installs
    it). Use it with: vhost create ... --tls manual --certificate NAME."""
    try:
        body = {"name": name, "certificate": cert_file.read_text(), "key": key_file.read_text()}
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read the PEM files: {exc}") from None
    with open_api(state_dir) as api:
        base = _base(resolve_workspace(api, workspace))
        existing = _named(api, base, name)
        if existing is not None and not replace:
            raise ApiError(f"a certificate is named {name!r}; add --replace to replace its pair")
        if replace:
            if existing is None:
                raise ApiError(f"no certificate is named {name!r} (nothing to replace)")
            stored = api.request("PUT", f"{base}/{existing['id']}/key-pair", body=body)
        else:
            stored = api.post(f"{base}/key-pair", body)
    if as_json:
        echo_json(stored)
    else:
        verb = "replaced" if replace else "uploaded"
        click.echo(f"{verb} certificate {stored['name']} ({stored['id']}) for "
                   f"{', '.join(stored['names'])}, valid until {stored['not_after']}")  # fmt: skip


def _named(api: Api, base: str, name: str) -> dict[str, Any] | None:
    items = api.get(base, name=name)["items"]
    return dict(items[0]) if items else None


@cert.command()
@click.argument("cert_ref", metavar="NAME|ID")
@workspace_option
@state_dir_option
def renew(cert_ref: str, workspace: str | None, state_dir: Path) -> None:
    """Renew an ACME certificate now (progress: nxmesh cert list)."""
    with open_api(state_dir) as api:
        base = _base(resolve_workspace(api, workspace))
        entity = resolve(api, base, cert_ref, "certificate")
        api.post(f"{base}/{entity['id']}/renew", {})
    click.echo(f"renewal of {entity['name']} ({', '.join(entity['names'])}) requested")


@cert.command()
@click.argument("cert_ref", metavar="NAME|ID")
@workspace_option
@state_dir_option
def delete(cert_ref: str, workspace: str | None, state_dir: Path) -> None:
    """Delete a certificate and its sealed key (refused while a vhost names it)."""
    with open_api(state_dir) as api:
        base = _base(resolve_workspace(api, workspace))
        entity = resolve(api, base, cert_ref, "certificate")
        api.delete(f"{base}/{entity['id']}")
    click.echo(f"deleted certificate {entity['name']} ({entity['id']})")
