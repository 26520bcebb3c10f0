"""The operators' web console, served by the resolution API under /console: server-rendered
Jinja2 templates with htmx for the queue's refresh. It calls the same service layer as the API
(reading, transitions, bulk_work), with the same roles (permissions.py) and concurrency rules."""
