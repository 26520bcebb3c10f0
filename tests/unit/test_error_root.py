"""One root for the errors Loopgate raises on purpose: `except LoopgateError` catches each of them
(and, for the Kafka settings, what callers caught before still catches them)."""

from __future__ import annotations

import pytest

from loopgate.cli.export import ExportFailed
from loopgate.common.errors import LoopgateError
from loopgate.common.kafka import KafkaSettingsError, KafkaStartupError
from loopgate.common.secrets import SecretFileError
from loopgate.detector.config import ConfigError
from loopgate.detector.tuning import ProposalInvalid
from loopgate.resolution_api.console.sso import SignInRefused, SsoSettingsError
from loopgate.resolution_api.console.sso_mapping import SsoMappingError
from loopgate.resolution_api.db.engine import SchemaNotAtHead
from loopgate.resolution_api.db.privileges import BadRoleName
from loopgate.resolution_api.domain_errors import Conflict, DomainError, NotFound
from loopgate.resolution_api.notifications.config import NotificationsConfigError
from loopgate.resolution_api.queues.routing import RoutesError
from loopgate.resolution_api.schedules.config import SchedulesError

ROOTED = [
    DomainError,
    NotFound,
    Conflict,
    ConfigError,
    ProposalInvalid,
    RoutesError,
    NotificationsConfigError,
    SsoSettingsError,
    SignInRefused,
    SsoMappingError,
    KafkaSettingsError,
    KafkaStartupError,
    ExportFailed,
    SecretFileError,
    SchemaNotAtHead,
    BadRoleName,
    SchedulesError,
]


@pytest.mark.parametrize("error", ROOTED, ids=lambda e: e.__name__)
def test_every_error_raised_on_purpose_is_a_loopgate_error(error: type[Exception]) -> None:
    assert issubclass(error, LoopgateError)


def test_kafka_errors_are_still_what_their_callers_caught() -> None:
    assert issubclass(KafkaSettingsError, ValueError) and issubclass(KafkaStartupError, RuntimeError)


def test_there_is_one_forbidden() -> None:
    import loopgate.resolution_api.console.routes as console_routes
    from loopgate.resolution_api.http import errors

    assert hasattr(errors, "Forbidden") and not hasattr(console_routes, "Forbidden")
