"""Leaderless membership and dissemination: SWIM with Lifeguard over authenticated UDP/TCP.

mesh/ knows nothing of nginx or of the rest of NxMesh. Its public interface is what this
package exports; other packages must not reach into its modules (an import-linter
contract enforces it for crdt/). See docs/mesh.md and docs/protocol.md.
"""

from mesh.admission import AdmissionError as AdmissionError
from mesh.admission import Admitted as Admitted
from mesh.admission import request_admission as request_admission
from mesh.config import META_MAX as META_MAX
from mesh.config import MeshConfig as MeshConfig
from mesh.delegate import Answerer as Answerer
from mesh.delegate import Delegate as Delegate
from mesh.delegate import StaticMembers as StaticMembers
from mesh.driver import IOStats as IOStats
from mesh.driver import JoinError as JoinError
from mesh.driver import MeshNode as MeshNode
from mesh.errors import DropReason as DropReason
from mesh.errors import LocalProtocolError as LocalProtocolError
from mesh.errors import MeshError as MeshError
from mesh.errors import MetaTooLarge as MetaTooLarge
from mesh.events import BroadcastDelivered as BroadcastDelivered
from mesh.events import Event as Event
from mesh.events import MemberAlive as MemberAlive
from mesh.events import MemberDead as MemberDead
from mesh.events import MemberEvent as MemberEvent
from mesh.events import MemberJoined as MemberJoined
from mesh.events import MemberLeft as MemberLeft
from mesh.events import MemberRemoved as MemberRemoved
from mesh.events import MemberSuspect as MemberSuspect
from mesh.events import MemberUpdated as MemberUpdated
from mesh.keys import Identity as Identity
from mesh.keys import fingerprint as fingerprint
from mesh.member import Address as Address
from mesh.member import Member as Member
from mesh.member import MemberState as MemberState
from mesh.query import MAX_SERVED_QUERIES as MAX_SERVED_QUERIES
from mesh.query import QUERY_MAX_ANSWER as QUERY_MAX_ANSWER
from mesh.query import QUERY_MAX_REQUEST as QUERY_MAX_REQUEST
from mesh.query import QueryError as QueryError
from mesh.stats import Stats as Stats
