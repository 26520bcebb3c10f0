"""Event simulator: a seeded advertising world, deterministic upstream event streams with injected
faults and their ground truth, malformed messages for the dead-letter path, and a Kafka publisher."""
