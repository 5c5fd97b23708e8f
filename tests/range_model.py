"""A model of fcntl(2) byte-range locks, as the man page describes them, used as a test oracle.

One owner's locks are a map from byte to mode: a new lock replaces whatever that owner held
on its range ("converting ... existing locks"), an unlock removes it (splitting a lock when
it unlocks the middle), `len 0` means "to the end of the file, no matter how large the file
grows". Another owner's request conflicts when any byte in its range is locked exclusively,
or it asks for an exclusive lock on a byte that is locked at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The model only tracks bytes below this bound; requests stay well below it.
UNIVERSE = 256


def span(start: int, length: int) -> range:
    return range(start, UNIVERSE if length == 0 else min(start + length, UNIVERSE))


@dataclass
class OwnerLocks:
    held: dict[int, str] = field(default_factory=dict)  # byte -> "sh" | "ex"

    def lock(self, mode: str, start: int, length: int) -> None:
        for byte in span(start, length):
            self.held[byte] = mode

    def unlock(self, start: int, length: int) -> None:
        for byte in span(start, length):
            self.held.pop(byte, None)

    def conflicts(self, mode: str, start: int, length: int) -> set[int]:
        """The bytes of the request that another owner's lock would conflict with."""
        return {
            b
            for b in span(start, length)
            if b in self.held and (mode == "ex" or self.held[b] == "ex")
        }
