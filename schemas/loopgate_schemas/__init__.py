"""The Loopgate contract as pydantic v2 models, shared by every service.

- `events`: the upstream CloudEvents, one model per event type, validated per topic.
- `exceptions`: the exception record published on `exceptions`.
- `outcomes`: the outcome CloudEvent published on `exception-outcomes`.
- `topics`: the contract's topic names.
"""
