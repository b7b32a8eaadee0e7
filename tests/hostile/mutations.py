"""Hypothesis strategies that damage valid files the way hostile or broken ones are damaged: flipped bits,
sizes overwritten with boundary values (0, 1, 8, 2^31 - 1, 2^32 - 1, ...), cut tails, inserted and deleted
runs. Used by the property tests and, with atheris' own mutator, by ``fuzz/fuzz_parsers.py``."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Values a size or count field is most often forged to.
BOUNDARY_U32 = (0, 1, 7, 8, 9, 16, 255, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF)

# Deterministic (the same examples on every CI run), no example database in the work tree, and a per-example
# deadline far above a normal call (shared CPUs) but short of a hang; bounded.guards catches real hangs.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=10_000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def apply_mutation(data: bytearray, operation: str, position: int, value: int, length: int) -> bytearray:
    """One damage ``operation`` at ``position`` (wrapped into the data)."""
    if not data:
        return bytearray(struct.pack(">I", value & 0xFFFFFFFF))
    at = position % len(data)
    if operation == "flip":
        data[at] ^= 1 << (value % 8)
    elif operation == "byte":
        data[at] = value & 0xFF
    elif operation in ("u32be", "u32le"):
        field = struct.pack(">I" if operation == "u32be" else "<I", BOUNDARY_U32[value % len(BOUNDARY_U32)])
        data[at : at + 4] = field[: len(data) - at]
    elif operation == "truncate":
        del data[at:]
    elif operation == "insert":
        data[at:at] = bytes([value & 0xFF]) * length
    elif operation == "delete":
        del data[at : at + length]
    return data


OPERATIONS = ("flip", "byte", "u32be", "u32le", "truncate", "insert", "delete")


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with 1 to 6 random damages."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        apply_mutation(
            data,
            draw(st.sampled_from(OPERATIONS)),
            draw(st.integers(0, 1 << 20)),
            draw(st.integers(0, 1 << 16)),
            draw(st.integers(1, 64)),
        )
    return bytes(data)
