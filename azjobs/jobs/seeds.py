"""Job seeds: random 63-bit numbers drawn where a job is queued, never a counter in Redis.

A counter starts again when Redis is restored from an older snapshot (or restarted empty), and its
jobs would replay the noise of jobs already played. A draw from the OS's random source depends on
nothing stored; among a million jobs two share a seed with a chance of about 1e-7. 63 bits, so the
seed fits a signed 64-bit integer in any JSON reader.
"""

from __future__ import annotations

import secrets

SEED_BITS = 63


def new_seed() -> int:
    return secrets.randbits(SEED_BITS)
