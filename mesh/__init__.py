"""Leaderless membership and dissemination: SWIM with Lifeguard over authenticated UDP/TCP.

mesh/ knows nothing of nginx or of the rest of NxMesh. Its public interface is what this
package exports; other packages must not reach into its modules.
"""
