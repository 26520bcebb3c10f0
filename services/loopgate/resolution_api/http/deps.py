"""What routes get injected: the running services of the app (built in the lifespan).

Every dependency here is `async def`: FastAPI runs a plain `def` dependency in its thread pool,
a thread hop (and a wait for the GIL) on every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.tokens import Tokens
from loopgate.resolution_api.clock import Clock
from loopgate.resolution_api.console.sso import SingleSignOn
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions.intake import Intake
from loopgate.resolution_api.messagebus import MessageBus
from loopgate.resolution_api.notifications.relay import NotificationRelay
from loopgate.resolution_api.outcomes.outbox import OutboxRelay
from loopgate.resolution_api.schedules.config import SchedulesConfig
from loopgate.resolution_api.schemas import unstorable_text
from loopgate.resolution_api.sweeps.sweeper import Sweeper


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    db: Database
    intake: Intake
    relay: OutboxRelay
    sweeper: Sweeper
    notifier: NotificationRelay
    tokens: Tokens
    clock: Clock  # the time every operation reads (create_app's `clock`)
    bus: MessageBus  # every command publishes its events here (handlers.bootstrap)
    sso: SingleSignOn | None = None  # the console's single sign-on, when LOOPGATE_SSO_ISSUER is set
    schedules: SchedulesConfig = field(default_factory=SchedulesConfig)  # LOOPGATE_SCHEDULES_FILE


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def reject_unstorable_params(request: Request) -> None:
    """Path and query values the database cannot compare (NUL, lone surrogates) are a 422, not a 500."""
    for where, params in (
        ("path", request.path_params.items()),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in params:
            problem = unstorable_text(value, f"{where}.{name}")
            if problem:
                location, _, message = problem.partition(": ")
                raise RequestValidationError(
                    [{"loc": tuple(location.split(".")), "msg": message, "type": "unstorable_text"}]
                )
