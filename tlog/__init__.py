"""Transparency-log primitives for the Case Evidence Service audit log.

A pure library: it imports only the Python standard library and ``cryptography``,
never Django, so that the same code computes Merkle roots and checkpoints inside the
web application and checks them in ``tools/verify_log.py``, the offline verifier that
an auditor runs with nothing but the log's public key.

- :mod:`tlog.merkle`: RFC 9162 Merkle tree hashing, proofs and proof verification.
- :mod:`tlog.note`: C2SP signed notes (Ed25519) and tlog checkpoints.
"""
