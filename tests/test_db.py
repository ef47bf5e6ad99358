"""db/: migrations, compare-and-set transitions and counters, on PostgreSQL and SQLite (real servers)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from db import Database, DatabaseNotMigrated, ItemState, JobState
from db import queries as q
from db.migrate import downgrade, head_revision, upgrade
from db.migrations import HEAD_REVISION
from db.models import utcnow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    url = request.getfixturevalue("postgres_url")
    downgrade(url)  # the module shares one PostgreSQL database: start every test from empty
    return url


@pytest.fixture
def database(db_url: str) -> Database:
    upgrade(db_url)
    database = Database(db_url)
    yield database
    database.dispose()


def make_job(database: Database, n: int = 5, **kwargs: object) -> int:
    job, created = database.run(
        q.get_or_create_job, name="t", source="s3://b/in/", dest="s3://b/out/", options={"upscale": 2}
    )
    assert created
    items = [q.NewItem(f"img{i:03d}.jpg", f"s3://b/in/img{i:03d}.jpg") for i in range(n)]
    assert database.run(q.add_items, job.id, items) == n
    database.run(q.finish_submission, job.id)
    return job.id


def assert_counters_match(database: Database, job_id: int) -> dict[str, int]:
    counts = database.run(q.counts, job_id)
    assert counts == database.run(q.count_by_scan, job_id)
    return counts


def test_head_constant_matches_the_migration_scripts() -> None:
    assert head_revision() == HEAD_REVISION


def test_upgrade_downgrade_upgrade_from_empty(db_url: str) -> None:
    database = Database(db_url)
    assert database.current_revision() is None
    upgrade(db_url)
    assert database.current_revision() == HEAD_REVISION
    database.check_migrated()
    downgrade(db_url)
    with database.engine.connect() as conn:
        tables = set(database.engine.dialect.get_table_names(conn))
    assert not tables & {"jobs", "items", "job_counts"}
    upgrade(db_url)
    assert database.current_revision() == HEAD_REVISION
    database.dispose()


def test_unmigrated_database_is_refused_with_the_fix(db_url: str) -> None:
    database = Database(db_url)
    with pytest.raises(DatabaseNotMigrated, match="wgfpgan db upgrade"):
        database.check_migrated()
    database.dispose()


def test_embedded_default_upgrades_itself(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WGFPGAN_HOME", str(tmp_path))
    monkeypatch.delenv("WGFPGAN_DATABASE_URL", raising=False)
    database = Database.from_settings()  # checks, and upgrades the default file
    assert database.current_revision() == HEAD_REVISION
    assert (tmp_path / "wgfpgan.sqlite3").is_file()
    database.dispose()


def test_resubmit_reuses_the_job_and_skips_known_keys(database: Database) -> None:
    job_id = make_job(database, 3)
    job, created = database.run(q.get_or_create_job, name="again", source="s3://b/in/", dest="s3://b/out/", options={})
    assert not created and job.id == job_id and job.state == JobState.SUBMITTING
    more = [q.NewItem(f"img{i:03d}.jpg", f"s3://b/in/img{i:03d}.jpg") for i in range(5)]
    assert database.run(q.add_items, job_id, more) == 2
    assert assert_counters_match(database, job_id)["queued"] == 5


def test_unsafe_items_are_born_failed(database: Database) -> None:
    job_id = make_job(database, 1)
    bad = q.NewItem("../x.jpg", "s3://b/x.jpg", error_code="unsafe_key", error_message="escapes")
    database.run(q.add_items, job_id, [bad])
    counts = assert_counters_match(database, job_id)
    assert counts["failed"] == 1 and counts["queued"] == 1
    [failed] = database.run(q.list_failed, job_id)
    assert failed.error_code == "unsafe_key" and failed.rel_key == "../x.jpg"


def test_claim_is_compare_and_set_and_finishing_needs_the_claim(database: Database) -> None:
    job_id = make_job(database, 2)
    first, second = database.run(q.queued_ids, job_id)
    claim = database.run(q.claim_item, first, worker_id="w1", lease_seconds=60)
    assert claim is not None and claim.attempt == 1
    assert database.run(q.claim_item, first, worker_id="w2", lease_seconds=60) is None
    stale = q.ClaimedItem(claim.id, job_id, claim.rel_key, claim.source_uri, attempt=0)
    assert not database.run(q.record_failure, stale, code="x", message="stale claim")
    assert database.run(
        q.record_success, claim, output_uri="s3://b/out/a.jpg", faces=1, restore_seconds=0.5,
        total_seconds=0.7, input_sha256="ab" * 32, model_version="m1",
    )  # fmt: skip
    assert not database.run(q.record_failure, claim, code="x", message="already finished")
    assert database.run(q.get_job, job_id).state == JobState.ACTIVE
    claim2 = database.run(q.claim_item, second, worker_id="w1", lease_seconds=60)
    assert database.run(q.record_failure, claim2, code="not_an_image", message="text file")
    counts = assert_counters_match(database, job_id)
    assert counts == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0}
    job = database.run(q.get_job, job_id)
    assert job.state == JobState.FINISHED and job.finished_at is not None
    assert q.is_done(job, counts)


def test_expired_leases_are_requeued_and_the_old_claim_is_void(database: Database) -> None:
    job_id = make_job(database, 2)
    a, b = database.run(q.queued_ids, job_id)
    expired = database.run(q.claim_item, a, worker_id="dead", lease_seconds=-1)
    alive = database.run(q.claim_item, b, worker_id="alive", lease_seconds=600)
    assert database.run(q.requeue_expired_leases) == [a]
    assert alive is not None
    again = database.run(q.claim_item, a, worker_id="w2", lease_seconds=600)
    assert again.attempt == 2
    assert not database.run(
        q.record_success, expired, output_uri="o", faces=0, restore_seconds=0, total_seconds=0,
        input_sha256="", model_version="m",
    )  # fmt: skip
    assert assert_counters_match(database, job_id)["running"] == 2


def test_release_hands_an_item_back(database: Database) -> None:
    job_id = make_job(database, 1)
    [item_id] = database.run(q.queued_ids, job_id)
    claim = database.run(q.claim_item, item_id, worker_id="w", lease_seconds=60)
    assert database.run(q.release_item, claim, reason="storage unreachable")
    assert assert_counters_match(database, job_id)["queued"] == 1


def test_cancel_then_retry(database: Database) -> None:
    job_id = make_job(database, 4)
    ids = database.run(q.queued_ids, job_id)
    running = database.run(q.claim_item, ids[0], worker_id="w", lease_seconds=-1)
    assert database.run(q.cancel_job, job_id) == 3
    assert database.run(q.get_job, job_id).state == JobState.CANCELLED
    assert database.run(q.claim_item, ids[1], worker_id="w", lease_seconds=60) is None
    assert database.run(q.requeue_expired_leases) == []  # a cancelled job's expired item is cancelled
    counts = assert_counters_match(database, job_id)
    assert counts["cancelled"] == 4 and running is not None
    assert database.run(q.retry_job, job_id) == 4
    assert database.run(q.get_job, job_id).state == JobState.ACTIVE
    assert assert_counters_match(database, job_id)["queued"] == 4
    assert len(database.run(q.undispatched_ids, job_id)) == 4


def test_dispatch_bookkeeping(database: Database) -> None:
    job_id = make_job(database, 3)
    ids = database.run(q.undispatched_ids, job_id)
    database.run(q.mark_enqueued, ids[:2], utcnow() - timedelta(hours=1))
    assert database.run(q.undispatched_ids, job_id) == ids[2:]
    assert database.run(q.jobs_with_undispatched) == [job_id]
    stale = database.run(q.stale_queued, enqueued_before=utcnow() - timedelta(minutes=5))
    assert [i for i, _ in stale] == ids[:2]
    assert database.run(q.forget_enqueued, ids[:1]) == 1
    assert database.run(q.undispatched_ids, job_id) == [ids[0], ids[2]]


def test_concurrent_claims_never_double_claim(db_url: str) -> None:
    upgrade(db_url)
    setup = Database(db_url)
    job_id = make_job(setup, 40)
    ids = setup.run(q.queued_ids, job_id)
    won: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        database = Database(db_url)
        mine = won.setdefault(name, [])
        for item_id in ids:
            claim = database.run(q.claim_item, item_id, worker_id=name, lease_seconds=60)
            if claim is not None:
                mine.append(item_id)
                database.run(
                    q.record_success, claim, output_uri="o", faces=0, restore_seconds=0,
                    total_seconds=0, input_sha256="", model_version="m",
                )  # fmt: skip
        database.dispose()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = sorted(i for items in won.values() for i in items)
    assert claimed == sorted(ids)  # every item exactly once
    counts = assert_counters_match(setup, job_id)
    assert counts["succeeded"] == 40 and setup.run(q.get_job, job_id).state == JobState.FINISHED
    setup.dispose()


def test_counts_come_from_the_counter_table_not_a_scan(database: Database) -> None:
    job_id = make_job(database, 3)
    # Corrupt the items table behind the counters' back: counts() must not notice (it never scans).
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE items SET state = 'succeeded' WHERE job_id = :j"), {"j": job_id})
    assert database.run(q.counts, job_id)["queued"] == 3
    assert database.run(q.count_by_scan, job_id)["succeeded"] == 3


def test_item_states_are_the_documented_ones() -> None:
    assert [s.value for s in ItemState] == ["queued", "running", "succeeded", "failed", "cancelled"]


def test_models_and_migrations_agree(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.models import Base

    upgrade(db_url)
    database = Database(db_url)
    with database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    database.dispose()


def test_an_item_that_keeps_killing_its_worker_fails_after_max_attempts(database: Database) -> None:
    job_id = make_job(database, 1)
    [item_id] = database.run(q.queued_ids, job_id)
    for attempt in (1, 2):
        claim = database.run(q.claim_item, item_id, worker_id=f"dead{attempt}", lease_seconds=-1)
        assert claim.attempt == attempt
        assert database.run(q.requeue_expired_leases, max_attempts=3) == [item_id]
    database.run(q.claim_item, item_id, worker_id="dead3", lease_seconds=600)
    assert database.run(q.requeue_workers, job_id, ["dead3"], max_attempts=3) == []
    [item] = database.run(q.list_failed, job_id)
    assert item.error_code == "worker_lost" and "3 times" in item.error_message
    assert database.run(q.get_job, job_id).state == JobState.FINISHED
    assert database.run(q.retry_job, job_id, failed_only=True) == 1
    [item] = database.run(q.list_items, job_id)
    assert item.state == "queued" and item.attempts == 0 and item.error_code is None
    assert_counters_match(database, job_id)


@pytest.mark.services
def test_worker_connections_skip_the_wal_flush_wait_on_postgresql(postgres_url: str) -> None:
    relaxed = Database(postgres_url, durable_commits=False)
    assert relaxed.run(lambda s: s.execute(text("SHOW synchronous_commit")).scalar()) == "off"
    relaxed.dispose()


@pytest.mark.services
def test_transactions_survive_killed_postgresql_connections(postgres_url: str) -> None:
    """A server restart drops every connection: the next transactions reconnect (pre-ping) or retry."""
    from sqlalchemy import create_engine

    downgrade(postgres_url)
    upgrade(postgres_url)
    database = Database(postgres_url, durable_commits=False)
    job_id = make_job(database, 3)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database_name = database.engine.url.database
    for item_id in database.run(q.queued_ids, job_id):
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database_name},
            )
        claim = database.run(q.claim_item, item_id, worker_id="w", lease_seconds=60)
        assert claim is not None
        assert database.run(q.record_failure, claim, code="x", message="y")
    assert assert_counters_match(database, job_id)["failed"] == 3
    admin.dispose()
    database.dispose()


@pytest.mark.services
def test_a_transaction_whose_connection_dies_midway_is_retried(postgres_url: str) -> None:
    from sqlalchemy import create_engine

    downgrade(postgres_url)
    upgrade(postgres_url)
    database = Database(postgres_url)
    job_id = make_job(database, 1)
    [item_id] = database.run(q.queued_ids, job_id)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    calls = []

    def claim_after_losing_the_connection(session, item_id: int):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return q.claim_item(session, item_id, worker_id="w", lease_seconds=60)

    claim = database.run(claim_after_losing_the_connection, item_id)
    assert len(calls) == 2 and claim is not None and claim.attempt == 1
    assert assert_counters_match(database, job_id)["running"] == 1
    admin.dispose()
    database.dispose()


def test_a_postgres_host_that_never_answers_fails_fast_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listening socket that never speaks PostgreSQL (like a host that drops packets after the TCP
    handshake): the connect gives up after PG_CONNECT_TIMEOUT instead of blocking the command forever."""
    import socket

    from sqlalchemy.exc import OperationalError

    import db.engine

    monkeypatch.setattr(db.engine, "PG_CONNECT_TIMEOUT", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        engine = db.engine.create_db_engine(f"postgresql+psycopg://u@127.0.0.1:{port}/x")
        with pytest.raises(OperationalError, match="timeout"):  # without it this would block forever
            engine.connect().close()
        engine.dispose()
