"""Certificates for ``tls: acme`` virtual hosts, coordinated by the mesh (no master).

Modules: ``plan`` (pure decisions: subjects, renewal times, rendezvous choice, backoff),
``records`` (what is written in the documents), ``client`` (synchronous ACME client),
``keys`` (keys, CSRs, chains), ``challenges`` (HTTP-01 files, DNS-01 providers),
``install`` (certificate files for nginx), ``orderer`` (one order), ``service`` (the
trio service), ``metrics``, ``settings``, ``view`` (status rows), ``upload`` (manual
key pairs). See docs/certificates.md.

Kept import-light: import the submodules you need (the API imports ``view`` and
``upload`` only).
"""
