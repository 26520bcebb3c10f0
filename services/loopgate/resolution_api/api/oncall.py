"""/v1/oncall: who is on call now in every schedule (schedules/oncall.py, at the app's clock), with
the channels each person is reached on. Operators and admins: it lists people's addresses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from loopgate.resolution_api.http.auth import CanSeeOnCall
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.schedules.oncall import everyone_on_call

router = APIRouter(prefix="/v1/oncall", tags=["on call"], dependencies=[Depends(reject_unstorable_params)])


class ChannelRead(BaseModel):
    kind: str = Field(description="chat, email, pagerduty, or another channel kind.")
    address: str = Field(description="The chat mention, email address or PagerDuty routing key.")


class OnCallRead(BaseModel):
    schedule: str
    person: str | None = Field(description="Who is on call; null when no layer covers this moment.")
    name: str | None = Field(description="The person's name as the schedules file gives it.")
    source: str = Field(description='"override", "layer:<index>" or "nobody".')
    layer: str | None = Field(description="The layer's name, when it has one.")
    until: AwareDatetime | None = Field(description="When this turn or override ends; null when not known.")
    channels: list[ChannelRead]


class OnCallPage(BaseModel):
    at: AwareDatetime = Field(description="The moment asked about (now, or `at`).")
    items: list[OnCallRead]


@router.get("", summary="Who is on call now in every schedule", responses=responses(400, 401, 403))
async def who_is_on_call(
    principal: CanSeeOnCall,
    services: ServicesDep,
    at: Annotated[AwareDatetime | None, Query(description="Another moment than now (RFC 3339).")] = None,
) -> OnCallPage:
    moment = at or services.clock()
    config = services.schedules
    items = []
    for entry in everyone_on_call(config, moment):
        person = config.people.get(entry.person) if entry.person else None
        items.append(
            OnCallRead(
                schedule=entry.schedule,
                person=entry.person,
                name=(person.name or None) if person else None,
                source=entry.source,
                layer=entry.layer,
                until=entry.until,
                channels=[ChannelRead(kind=c.kind, address=c.address) for c in person.channels] if person else [],
            )
        )
    return OnCallPage(at=moment, items=items)
