"""Creating a node: ``init`` (a new mesh) and ``join`` (an existing one, with a token).

Both leave a complete state directory (:mod:`node.statedir`): identity, genesis, config
and a store holding the mesh document; ``nxmesh run`` then starts the daemon on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from crdt.documents import MESH_DOCUMENT, MeshDocument
from crdt.joining import JoinRefused, JoinRequest, verify_answer
from crdt.membership import ALL_WORKSPACES, MeshState
from crdt.schema import Organization, Workspace
from crdt.store import PersistedDoc, Store, StoreError
from crdt.trust import Genesis, Token, TokenError
from mesh import AdmissionError, Identity, request_admission
from node.config import ConfigError, NodeConfig, parse_host_port
from node.statedir import StateDir

__all__ = ["BootstrapError", "Created", "init_node", "join_node"]

DEFAULT_WORKSPACE = "default"
"""Id of the workspace ``init`` creates, so a new mesh is usable at once."""


class BootstrapError(Exception):
    """init/join cannot go ahead; the message is one line for the operator."""


@dataclass(frozen=True)
class Created:
    """What init/join made."""

    config: NodeConfig
    identity: Identity
    genesis: Genesis


def init_node(state: StateDir, config: NodeConfig, *, now: int | None = None) -> Created:
    """A new mesh whose first member is this node (genesis, its own admission implied by
    the genesis key, the ``*`` assignment, a default organization and workspace)."""
    now = int(time.time()) if now is None else now
    state.create()
    identity = _identity(state)
    genesis = Genesis.create(identity, config.name, now)
    state.write_genesis(genesis)
    try:
        with Store.open(state.store) as store:
            mesh = MeshState(PersistedDoc.open(store, MESH_DOCUMENT), genesis)
            mesh.add_records([genesis])
            mesh.assign(identity.public_key, ALL_WORKSPACES)

            def defaults(doc: MeshDocument) -> None:
                org = Organization(id=DEFAULT_WORKSPACE, name="Default")
                doc.put(org)
                doc.put(Workspace(id=DEFAULT_WORKSPACE, organization=org.id, name="default"))

            MeshDocument.edit(mesh.persisted, defaults)
    except StoreError as exc:
        raise BootstrapError(f"cannot write the store {state.store}: {exc}") from None
    config.write(state.config)
    return Created(config, identity, genesis)


async def join_node(
    state: StateDir, token_text: str, config: NodeConfig, *, wait: float = 10.0
) -> Created:
    """Redeem a join token with the first seed that answers; store what it hands over.

    The identity is created (or reused, when an earlier attempt failed) before asking,
    so a retry presents the same key; the config is written only once admitted.
    """
    if state.config.exists():
        raise BootstrapError(f"{state.root} already holds a node; use another --state-dir")
    try:
        token = Token.decode(token_text)
    except TokenError as exc:
        raise BootstrapError(str(exc)) from None
    state.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = _identity(state)
    request = JoinRequest.of(token, config.name).pack()
    failures: list[str] = []
    for seed in token.seeds:
        try:
            addr = parse_host_port(seed, "seed")
            admitted = await request_admission(identity, token.mesh_id, addr, request, wait=wait)
            joined = verify_answer(token, identity.public_key, admitted.responder, admitted.payload)
        except JoinRefused as exc:
            raise BootstrapError(str(exc)) from None  # the mesh said no: do not shop around
        except (AdmissionError, ConfigError) as exc:
            failures.append(str(exc))
            continue
        break
    else:
        raise BootstrapError("no seed could be reached: " + "; ".join(failures))
    for sub in (state.nginx_prefix, state.certs):
        sub.mkdir(mode=0o700, exist_ok=True)
    if not state.genesis_file.exists():
        state.write_genesis(joined.genesis)
    try:
        with Store.open(state.store) as store:
            PersistedDoc.open(store, MESH_DOCUMENT).apply_remote(joined.mesh_update)
    except StoreError as exc:
        raise BootstrapError(f"cannot write the store {state.store}: {exc}") from None
    final = config.with_overrides(seeds=tuple(token.seeds))
    final.write(state.config)
    return Created(final, identity, joined.genesis)


def _identity(state: StateDir) -> Identity:
    if state.identity_file.exists():
        return state.read_identity()
    identity = Identity.generate()
    state.write_identity(identity)
    return identity
