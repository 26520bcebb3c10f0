"""The database: engine and sessions (engine.py), the tables (models.py), Alembic migrations."""
