"""Errors a user can act on.

Every :class:`AuditorError` carries one line that says what is wrong and how to fix it; the CLI
prints that line (never a traceback) and exits non-zero.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base class of the errors the auditor reports to users as one line."""


class InvalidInputError(AuditorError, ValueError):
    """A value given by the user (a budget, a region, a unit, a setting) cannot be used."""


class UnknownRegionError(InvalidInputError):
    """A region that is neither a country, a cloud region nor an intensity with a unit."""


class UnknownHardwareError(InvalidInputError):
    """A device model that the bundled hardware table does not hold (or holds ambiguously)."""


class ConfigError(InvalidInputError):
    """A settings file or environment variable holds a value that cannot be used."""


class LedgerError(AuditorError):
    """The ledger cannot be opened, read or written."""


class UnknownSweepError(LedgerError):
    """The ledger holds no sweep of that name (yet)."""


class NoLedgerError(LedgerError):
    """A command that only reads found no ledger where it was told to look (it creates none)."""


class SchemaTooNewError(LedgerError):
    """The ledger was written by a newer version of the auditor than this one."""


class InvalidRecordError(AuditorError, ValueError):
    """A trial record holds a value the ledger must not store (NaN energy, a string for a
    number...): it is set aside alone, the others are written."""


class UnsafeSpoolError(AuditorError):
    """The folder of held-back trials (or a file in it) could be written by someone else: its
    files are neither written nor replayed until its permissions are fixed."""
