"""On-call schedules: people, rotations with layers and overrides, and who is on call at a time."""
