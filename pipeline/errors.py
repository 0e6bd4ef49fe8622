"""The errors a user can cause and fix: the CLI prints these as one clear line, not a traceback."""

from __future__ import annotations

from .analysis import AnalysisError
from .analyze_files import InputError
from .claims import ClaimError
from .csvfile import CsvFileError
from .database import DatabaseLocked, MigrationError
from .digest import WeekError
from .feeds import RegistryError
from .fetch import UnsupportedURL
from .mailer import DeliveryUnknown, DigestNotSent
from .store import SourceConflict

USER_ERRORS = (
    AnalysisError, InputError, ClaimError, CsvFileError, DatabaseLocked, MigrationError,
    SourceConflict, FileNotFoundError, RegistryError, UnsupportedURL, DigestNotSent, DeliveryUnknown,
    WeekError,
)
