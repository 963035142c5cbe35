"""One exception root; each user mistake becomes one line on stderr, not a traceback."""

from __future__ import annotations


class AvailabilityError(Exception):
    """A problem the user can act on; the message is shown as it is."""

    exit_code = 1


class AgreementsError(AvailabilityError):
    """The service-agreements file is missing or invalid; the message names the key path."""


class InputError(AvailabilityError):
    """An input file cannot be read."""


class WarehouseError(AvailabilityError):
    """The warehouse cannot be opened or refused a statement."""
