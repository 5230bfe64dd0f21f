"""A node's configuration: ``config.toml`` in the state directory, then environment
variables, then command-line flags (each overriding the one before).

Environment variables are ``NXMESH_<KEY>`` for each key of :data:`FIELDS`
(``NXMESH_LISTEN``, ``NXMESH_METRICS``, ``NXMESH_NGINX_MODE``...). Every value is
validated here with a one-line error naming the key and the source it came from.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

from crdt.joining import check_node_name

__all__ = ["ConfigError", "NodeConfig", "Role", "parse_host_port"]

Role = Literal["admin", "operator", "viewer"]
NginxMode = Literal["managed", "external", "render-only"]
Preset = Literal["lan", "wan", "local"]
_ROLES = ("admin", "operator", "viewer")
DEFAULT_SPLAY = 0.25


class ConfigError(Exception):
    """A configuration value is unusable; the message names it and why."""


def parse_host_port(
    value: str, what: str, *, allow_wildcard: bool = True, allow_zero: bool = False
) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` with an IP literal host; :class:`ConfigError`.
    Port 0 (pick a free one) only with ``allow_zero``."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}: {host!r} is not an IP address") from None
    if ip.is_unspecified and not allow_wildcard:
        raise ConfigError(f"{what}: {host} is a wildcard; give an address others can reach")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{what}: port {port_text!r} is not a number") from None
    if not (0 if allow_zero else 1) <= port < 65536:
        raise ConfigError(f"{what}: port {port} is not between 1 and 65535")
    return str(ip), port


def format_host_port(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to run besides its state."""

    name: str
    listen: str
    """Mesh UDP+TCP address ``HOST:PORT``."""
    advertise: str = ""
    """Address others reach this node at; default ``listen``."""
    seeds: tuple[str, ...] = ()
    """Mesh addresses to join through at start (from the join token)."""
    preset: Preset = "lan"
    http: str = ""
    """This node's bind address for the ``http`` entry point (default: the settings')."""
    https: str = ""
    nginx_mode: NginxMode = "managed"
    nginx_binary: str = "/usr/sbin/nginx"
    nginx_pid_file: str = ""
    """External mode: the running nginx's pid file."""
    apply_splay: str = ""
    """Seconds (0-60) of random delay before applying a change, so that the nodes of a
    fleet do not all reload nginx - and open new upstream connections - in the same
    moment; default 0.25, and 0 in render-only mode (which reloads nothing)."""
    metrics: str = "127.0.0.1:0"
    """Prometheus endpoint ``HOST:PORT`` (loopback; port 0 picks one), or ``off``."""
    roles: Mapping[str, Role] = field(default_factory=dict)
    """API callers' roles: ``alice``/``uid:1000`` (a user) or ``group:ops``/``gid:1000``
    -> ``admin``, ``operator`` or ``viewer``. root and the daemon's own uid are admin."""

    def __post_init__(self) -> None:
        try:
            check_node_name(self.name)
        except ValueError as exc:
            raise ConfigError(f"name: {exc}") from None
        parse_host_port(self.listen, "listen", allow_zero=True)
        if self.advertise:
            parse_host_port(self.advertise, "advertise", allow_wildcard=False)
        elif ipaddress.ip_address(self.listen_addr[0]).is_unspecified:
            raise ConfigError("advertise: required when listen is a wildcard address")
        for seed in self.seeds:
            parse_host_port(seed, "seeds")
        for key in ("http", "https"):
            if getattr(self, key):
                parse_host_port(getattr(self, key), key)
        if self.preset not in ("lan", "wan", "local"):
            raise ConfigError(f"preset: {self.preset!r} is not one of lan, wan, local")
        if self.nginx_mode not in ("managed", "external", "render-only"):
            raise ConfigError(
                f"nginx_mode: {self.nginx_mode!r} is not one of managed, external, render-only"
            )
        if self.apply_splay:
            try:
                splay = float(self.apply_splay)
            except ValueError:
                raise ConfigError(f"apply_splay: {self.apply_splay!r} is not a number") from None
            if not 0 <= splay <= 60:
                raise ConfigError(f"apply_splay: {splay} is not between 0 and 60 seconds")
        if self.metrics != "off":
            host, _ = parse_host_port(self.metrics, "metrics", allow_zero=True)
            if not ipaddress.ip_address(host).is_loopback:
                raise ConfigError(f"metrics: {host} is not a loopback address")
        for who, role in self.roles.items():
            kind, sep, name = who.partition(":")
            if not who or (sep and (kind not in ("uid", "gid", "user", "group") or not name)):
                raise ConfigError(f"roles: {who!r} is not a user name, uid:N, group:NAME or gid:N")
            if role not in _ROLES:
                raise ConfigError(f"roles: {role!r} for {who} is not one of {_ROLES}")

    @property
    def listen_addr(self) -> tuple[str, int]:
        return parse_host_port(self.listen, "listen", allow_zero=True)

    @property
    def advertise_addr(self) -> tuple[str, int] | None:
        return parse_host_port(self.advertise, "advertise") if self.advertise else None

    @property
    def splay(self) -> float:
        """The applier's splay in seconds (see :attr:`apply_splay`)."""
        if self.apply_splay:
            return float(self.apply_splay)
        return 0.0 if self.nginx_mode == "render-only" else DEFAULT_SPLAY

    def seed_addrs(self) -> list[tuple[str, int]]:
        return [parse_host_port(s, "seeds") for s in self.seeds]

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> NodeConfig:
        """config.toml, then ``NXMESH_*`` variables, then ``overrides`` (flags)."""
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{path} does not exist: run 'nxmesh init' or 'nxmesh join'"
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        values = _flatten(data, str(path))
        values.update(_from_env(os.environ if environ is None else environ))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_values(values, str(path))

    @classmethod
    def from_values(cls, values: Mapping[str, Any], source: str = "flags") -> NodeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s): {', '.join(unknown)}")
        if "name" not in values or "listen" not in values:
            raise ConfigError(f"{source}: 'name' and 'listen' are required")
        kwargs = dict(values)
        if "seeds" in kwargs:
            kwargs["seeds"] = tuple(_str_list(kwargs["seeds"], "seeds"))
        if "roles" in kwargs:
            roles = kwargs["roles"]
            if not isinstance(roles, Mapping):
                raise ConfigError("roles: must be a table of uid = role")
            kwargs["roles"] = {str(k): v for k, v in roles.items()}
        splay = kwargs.get("apply_splay")
        if isinstance(splay, int | float) and not isinstance(splay, bool):
            kwargs["apply_splay"] = str(splay)  # a number in TOML, as operators write it
        for f in fields(cls):
            plain = f.name in kwargs and f.name not in ("seeds", "roles")
            if plain and not isinstance(kwargs[f.name], str):
                raise ConfigError(f"{f.name}: must be a string, not {kwargs[f.name]!r}")
        return cls(**kwargs)

    def with_overrides(self, **changes: Any) -> NodeConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def dump(self) -> str:
        """This configuration as TOML (what init/join write)."""
        lines = ["# NxMesh node configuration (written by nxmesh init/join; edit freely)."]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "roles":
                continue
            if f.name == "seeds":
                lines.append(f"seeds = [{', '.join(_quote(s) for s in value)}]")
            else:
                lines.append(f"{f.name} = {_quote(value)}")
        lines.append("")
        lines.append("[roles]")
        lines.append('# "alice" or "uid:1000" or "group:ops" or "gid:1000" = role')
        for uid, role in sorted(self.roles.items()):
            lines.append(f"{_quote(uid)} = {_quote(role)}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.dump())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _flatten(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "roles":
            out["roles"] = value
        elif isinstance(value, Mapping):
            raise ConfigError(f"{source}: unexpected table [{key}]")
        else:
            out[key] = value
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(NodeConfig):
        if f.name == "roles":
            continue
        raw = environ.get(f"NXMESH_{f.name.upper()}")
        if raw is None:
            continue
        out[f.name] = [s for s in raw.split(",") if s.strip()] if f.name == "seeds" else raw
    return out


def _str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what}: must be a list of strings")
    return cast(list[str], list(value))
