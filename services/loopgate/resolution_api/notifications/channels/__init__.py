"""Channels beyond webhooks and chat: email over SMTP, PagerDuty's Events API v2 and Opsgenie's
alert API, one module each. Each renders its payload (a pure function of the exception and the
event, with the receiver's templates) when the notification is written, and turns it into the
request at each attempt, with the receiver's key added then (a key is never stored in a row)."""
