"""Alembic migrations for the status database, shipped inside the package so an installed wgfpgan can
upgrade its database without a source checkout. HEAD_REVISION lets the CLI check the schema without
importing Alembic (tests assert it equals the script directory's head)."""

HEAD_REVISION = "0001"
