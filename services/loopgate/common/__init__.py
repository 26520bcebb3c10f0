"""What several services share: settings, metrics, logging, Kafka helpers."""
