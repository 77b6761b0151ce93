"""Storage: SQLAlchemy 2 async ORM models, the engine, and Alembic migrations."""
