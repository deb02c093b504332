"""Beat metadata in SQL (SQLAlchemy 2): records, beats, labels and their provenance.

A beat's primary key is also its FAISS id, so a search hit maps to its row directly.
Ids come from a counter in the ``simsearch_meta`` table that only grows: a replaced
record's beats get new ids and the old ones are never handed out again, so an id a
user saved either names the same beat or is reported missing.

Rows are versioned by index generation (:mod:`simsearch.store.layout`): a record row
carries the generation that added it and, once replaced, the one that removed it; a
catalog opened at generation *g* sees only the records alive at *g*. A catalog shared
by every generation (an external ``--catalog-url``) thereby keeps answering readers of
the published generation while a writer prepares the next one, and what a writer that
died had written is seen by no reader and dropped by the next writer (:meth:`Catalog.recover`).
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..errors import BeatNotFoundError, IndexFormatError, IndexWriteError, reason
from ..signal.beats import Beats

CATALOG_FORMAT = 2
"""Version of the schema below; a catalog of another version is refused, never migrated in place."""
SQL_BATCH = 500
"""Ids per ``IN (...)`` clause: under every database's parameter limit."""
BULK_SHARE = 8
""":meth:`Catalog.beat_refs` scans every beat once the ids asked for are more than one in this many."""
BEAT_COLUMNS = ("id", "record_id", "sample", "time", "lead", "symbol", "aami", "rr_prev", "rr_next", "rr_local",
                "label_source", "confidence")
"""Columns of a beat row, in the order a bulk insert writes them."""
COPY_TYPES = ("int4", "int4", "int4", "float8", "text", "text", "text", "float8", "float8", "float8", "text", "float8")
"""Their PostgreSQL types, for a binary COPY (Integer is int4, Float double precision, String varchar)."""


SCHEMA = MetaData()
"""The catalog's tables, declared with SQLAlchemy Core: no query of the catalog needs the ORM,
and not importing ``sqlalchemy.orm`` saves every command that opens an index ~0.07 s."""

META = Table(  # the catalog's own facts: format, owner, id counter, generations (see Catalog)
    "simsearch_meta", SCHEMA,
    Column("key", String(64), primary_key=True),
    Column("value", String(1024), nullable=False),
)

RECORDS = Table(
    "records", SCHEMA,
    Column("id", Integer, primary_key=True),
    # unique among the records alive at a generation (a replaced record's row stays until collected)
    Column("name", String(255), index=True, nullable=False),
    Column("path", String(1024), nullable=False),
    Column("lead", String(64), nullable=False),
    Column("fs", Float, nullable=False),
    Column("n_samples", Integer, nullable=False),
    Column("n_beats", Integer, nullable=False),
    Column("added_at", String(32), nullable=False),
    Column("added_gen", Integer, index=True, nullable=False),
    Column("removed_gen", Integer, nullable=True, index=True),
)

BEATS = Table(
    "beats", SCHEMA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("record_id", Integer, nullable=False),
    Column("sample", Integer, nullable=False),
    Column("time", Float, nullable=False),
    Column("lead", String(64), nullable=False),
    Column("symbol", String(4), nullable=True),
    Column("aami", String(1), nullable=True),
    Column("rr_prev", Float, nullable=False),
    Column("rr_next", Float, nullable=False),
    Column("rr_local", Float, nullable=False),
    # reference (the record's annotation file), expert (`annotate --labels`),
    # propagated (label propagation, with a confidence) or none (unlabeled)
    Column("label_source", String(16), nullable=False),
    Column("confidence", Float, nullable=True),
    # (record, sample): a record's beats in order, so the beat nearest a sample is two index seeks.
    Index("ix_beats_record_sample", "record_id", "sample"),
    # The foreign key and the index on the class are created in SQLite only (which has always
    # had them, the key unenforced): the catalog inserts a record and its beats in one
    # transaction and deletes beats before their record, and no query looks beats up by
    # class, so in PostgreSQL they would only cost time: a bulk insert runs 2.3 times faster
    # without them (scripts/benchmark_scale.py).
    ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE").ddl_if(dialect="sqlite"),
    Index("ix_beats_aami", "aami").ddl_if(dialect="sqlite"),
)


BEAT_FIELDS = ("id", "record", "sample", "time", "lead", "symbol", "aami", "rr_prev", "rr_next", "rr_local",
               "label_source", "confidence")
RECORD_FIELDS = ("id", "name", "path", "lead", "fs", "n_samples", "n_beats", "added_at")


def _sql_errors(error: type[Exception], doing: str):
    """A method decorator: SQL errors become one ``error`` line naming the catalog."""

    def decorate(method):
        @functools.wraps(method)
        def wrapped(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except SQLAlchemyError as exc:
                raise error(f"{doing} {self.name}: {_sql_reason(exc)}") from None

        return wrapped

    return decorate


_reading = _sql_errors(IndexFormatError, "catalog")
"""For queries: an unreadable or foreign catalog is an IndexFormatError."""
_writing = _sql_errors(IndexWriteError, "cannot write catalog")
"""For changes (a full disk, a read-only database): an IndexWriteError."""


def _sql_reason(exc: SQLAlchemyError) -> str:
    return reason(getattr(exc, "orig", None) or exc)


class Catalog:
    """Records and beats in any SQLAlchemy database (SQLite file by default), as seen at one generation.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of a catalog made by :meth:`create`.
    generation : int
        The index generation this catalog serves: only records alive at it are seen,
        and a writer's changes are tagged with it.
    immutable : bool
        ``url`` is a SQLite file that nothing will change (a published generation's
        own catalog): open it read-only, without locking, so readers need no write access.

    Raises
    ------
    IndexFormatError
        The database cannot be opened, or holds no simsearch catalog of this format.
    """

    def __init__(self, url: str, generation: int, *, immutable: bool = False):
        self.url = url
        self.generation = int(generation)
        self.name = _printable(url)
        try:
            parsed = make_url(url)
            if (parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
                    and not parsed.database.startswith("file:") and not Path(parsed.database).is_file()):
                # SQLite would create an empty file in its place: say what is missing instead
                raise IndexFormatError(f"catalog {self.name} is missing (no file {parsed.database})")
            if immutable:
                uri = Path(parsed.database).resolve().as_uri() + "?mode=ro&immutable=1"
                self.engine = create_engine(url, creator=lambda: sqlite3.connect(uri, uri=True,
                                                                                  check_same_thread=False))
            else:
                self.engine = create_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:  # ImportError: a URL whose driver is not installed
            raise IndexFormatError(f"catalog {self.name}: {reason(exc)}") from None
        self.meta = self._read_meta()

    @classmethod
    def create(cls, url: str, generation: int, *, index_uid: str, owner: str, next_id: int = 1) -> Catalog:
        """Create the tables (where missing) and, in a database without one, a new catalog.

        A database that already holds a catalog keeps it (its owner and counter): the
        caller checks :attr:`owner` before writing to it.
        """
        name = _printable(url)
        try:
            engine = create_engine(url)
            try:
                SCHEMA.create_all(engine)
                for index in BEATS.indexes:  # a catalog created before the index was declared gets it
                    index.create(engine, checkfirst=True)
                with engine.begin() as conn:
                    if conn.execute(select(func.count()).select_from(META)).scalar() == 0:
                        conn.execute(insert(META), [
                            {"key": key, "value": str(value)} for key, value in (
                                ("format", CATALOG_FORMAT), ("index_uid", index_uid), ("owner", owner),
                                ("next_beat_id", next_id), ("written", 0), ("oldest", 0))])
            finally:
                engine.dispose()
        except SQLAlchemyError as exc:
            raise IndexWriteError(f"cannot create catalog {name}: {_sql_reason(exc)}") from None
        except (ImportError, ValueError) as exc:
            raise IndexFormatError(f"catalog {name}: {reason(exc)}") from None
        return cls(url, generation)

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- the catalog's own facts
    @_reading
    def _read_meta(self) -> dict[str, str]:
        if not inspect(self.engine).has_table(META.name):
            raise IndexFormatError(f"catalog {self.name} is not a simsearch catalog (no {META.name} "
                                   "table)")
        with self.engine.connect() as conn:
            meta = dict(conn.execute(select(META.c.key, META.c.value)).all())
        if meta.get("format") != str(CATALOG_FORMAT):
            raise IndexFormatError(f"catalog {self.name} has format {meta.get('format')}, this simsearch reads "
                                   f"{CATALOG_FORMAT}: rebuild the index")
        for key in ("next_beat_id", "written", "oldest"):
            if not meta.get(key, "").isdigit():
                raise IndexFormatError(f"catalog {self.name} is corrupt ({key} is {meta.get(key)!r})")
        return meta

    @property
    def index_uid(self) -> str:
        """Identity of the index the catalog belongs to (also in the index's manifest)."""
        return self.meta.get("index_uid", "")

    @property
    def owner(self) -> str:
        """Absolute path of the index directory the catalog was created for."""
        return self.meta.get("owner", "")

    @property
    def next_id(self) -> int:
        """The id the next stored beat gets; only ever grows."""
        return int(self.meta["next_beat_id"])

    @property
    def generations(self) -> tuple[int, int]:
        """(oldest, newest) generation whose view the catalog holds intact.

        A writer's rows are tagged with its generation before it publishes, so the
        newest may be ahead of the index's published generation; rows collected after
        a later publication make generations before the oldest unreadable.
        """
        return int(self.meta["oldest"]), int(self.meta["written"])

    def _set_meta(self, conn, **values) -> None:
        for key, value in values.items():
            conn.execute(update(META).where(META.c.key == key).values(value=str(value)))
            self.meta[key] = str(value)

    def _alive(self):
        g = self.generation
        return (RECORDS.c.added_gen <= g) & or_(RECORDS.c.removed_gen.is_(None), RECORDS.c.removed_gen > g)

    # ---------------------------------------------------------------- a writer's generation
    @_writing
    def recover(self, published: int | None) -> None:
        """Drop what a writer that died before publishing left: rows newer than ``published``."""
        published = published or 0
        with self.engine.begin() as conn:
            newer = select(RECORDS.c.id).where(RECORDS.c.added_gen > published)
            conn.execute(delete(BEATS).where(BEATS.c.record_id.in_(newer)))
            conn.execute(delete(RECORDS).where(RECORDS.c.added_gen > published))
            conn.execute(update(RECORDS).where(RECORDS.c.removed_gen > published).values(removed_gen=None))
            self._set_meta(conn, written=min(int(self.meta["written"]), published))

    @_writing
    def advance_ids(self, next_id: int) -> None:
        """Never hand out an id below ``next_id`` (ids an index replaced by this one has used)."""
        if next_id > self.next_id:
            with self.engine.begin() as conn:
                self._set_meta(conn, next_beat_id=next_id)

    @_writing
    def mark_written(self) -> None:
        """Record that this generation's rows are complete (just before it is published)."""
        with self.engine.begin() as conn:
            self._set_meta(conn, written=self.generation)

    @_writing
    def collect(self, keep_from: int) -> None:
        """Delete the rows of records removed at or before generation ``keep_from``.

        Readers of ``keep_from`` and later generations never see them; readers of
        earlier generations can no longer open the catalog.
        """
        with self.engine.begin() as conn:
            gone = select(RECORDS.c.id).where(RECORDS.c.removed_gen <= keep_from)
            conn.execute(delete(BEATS).where(BEATS.c.record_id.in_(gone)))
            conn.execute(delete(RECORDS).where(RECORDS.c.removed_gen <= keep_from))
            self._set_meta(conn, oldest=max(int(self.meta["oldest"]), keep_from))

    @_writing
    def remove_all(self) -> np.ndarray:
        """Remove every record from this generation on (a rebuild); returns the removed beat ids."""
        with self.engine.begin() as conn:
            return self._remove(conn, self._alive())

    def _remove(self, conn, where) -> np.ndarray:
        """Remove the alive records matching ``where`` at this generation; their beat ids.

        Rows another generation may read are only marked removed; rows this write
        added itself were never seen by anyone and go at once.
        """
        records = conn.execute(select(RECORDS.c.id, RECORDS.c.added_gen).where(self._alive() & where)).all()
        if not records:
            return np.empty(0, dtype=np.int64)
        ids = [r.id for r in records]
        removed = np.array(conn.execute(select(BEATS.c.id).where(BEATS.c.record_id.in_(ids))).scalars().all(),
                           dtype=np.int64)
        own = [r.id for r in records if r.added_gen >= self.generation]
        if own:
            conn.execute(delete(BEATS).where(BEATS.c.record_id.in_(own)))
            conn.execute(delete(RECORDS).where(RECORDS.c.id.in_(own)))
        shared = [r.id for r in records if r.added_gen < self.generation]
        if shared:
            conn.execute(update(RECORDS).where(RECORDS.c.id.in_(shared)).values(removed_gen=self.generation))
        return removed

    @_writing
    def replace_record(self, beats: Beats, *, path: str, n_samples: int, label_source: np.ndarray | str,
                       confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Insert a record's beats, replacing any earlier version of the record.

        Samples are stored at the record's own rate (what a user's viewer shows). New
        beats get fresh ids from the counter, never those of the beats they replace.

        Returns
        -------
        ids, removed : array of int64
            The new beats' ids, and the ids of the beats removed, for the vector index to follow.
        """
        n = len(beats)
        sources = np.broadcast_to(np.asarray(label_source, dtype=object), (n,))
        with self.engine.begin() as conn:
            removed = self._remove(conn, RECORDS.c.name == beats.record)
            record_id = conn.execute(insert(RECORDS).values(
                name=beats.record, path=path, lead=beats.lead, fs=beats.fs, n_samples=n_samples, n_beats=n,
                added_at=datetime.now(UTC).isoformat(timespec="seconds"), added_gen=self.generation,
                removed_gen=None)).inserted_primary_key[0]
            first = int(conn.execute(select(META.c.value).where(META.c.key == "next_beat_id")).scalar())
            ids = np.arange(first, first + n, dtype=np.int64)
            if n:
                columns = (ids.tolist(), [record_id] * n, np.asarray(beats.samples, dtype=np.int64).tolist(),
                           (beats.samples / beats.fs).astype(float).tolist(), [beats.lead] * n,
                           [s or None for s in beats.symbols.tolist()], [a or None for a in beats.aami.tolist()],
                           *(beats.context[:, j].astype(float).tolist() for j in range(3)),
                           [str(s) for s in sources.tolist()],
                           [None] * n if confidence is None else np.asarray(confidence, dtype=float).tolist())
                self._insert_beats(conn, list(zip(*columns)))
            self._set_meta(conn, next_beat_id=first + n)
        return ids, removed

    def _insert_beats(self, conn, rows: list[tuple]) -> None:
        """Insert beat rows (tuples in :data:`BEAT_COLUMNS` order) in one go.

        PostgreSQL through psycopg 3 gets them by ``COPY`` on the transaction's own
        connection; a driver with positional parameters (SQLite's, psycopg2...) by one
        executemany of tuples; any other by one executemany of a core insert.
        """
        dialect = self.engine.dialect
        table, names = BEATS.name, ", ".join(BEAT_COLUMNS)
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            with conn.connection.dbapi_connection.cursor() as cursor, \
                    cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
            return
        marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
        if marker is not None:
            conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({', '.join([marker] * len(BEAT_COLUMNS))})",
                                 rows)
            return
        conn.execute(insert(BEATS), [dict(zip(BEAT_COLUMNS, row)) for row in rows])

    # ---------------------------------------------------------------- reading
    @_reading
    def record(self, name: str) -> dict | None:
        """A record's row (name, path, lead, fs, n_samples, n_beats, added_at), or None."""
        query = select(*(RECORDS.c[f] for f in RECORD_FIELDS)).where(
            self._alive() & (RECORDS.c.name == name))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    @_reading
    def records(self) -> list[dict]:
        """Every record's row, by name."""
        query = select(*(RECORDS.c[f] for f in RECORD_FIELDS)).where(self._alive()).order_by(
            RECORDS.c.name)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    @_reading
    def nearest_beat(self, record: str, sample: int) -> int | None:
        """Id of the record's beat whose R-peak is nearest ``sample`` (None: no beats)."""
        sample = int(sample)
        best = None  # (distance, sample, id): the earlier beat wins a tie
        with self.engine.connect() as conn:
            records = conn.execute(select(RECORDS.c.id).where(self._alive() & (RECORDS.c.name == record))).scalars()
            for record_id in records.all():
                mine = BEATS.c.record_id == record_id
                for query in (select(BEATS.c.id, BEATS.c.sample).where(mine & (BEATS.c.sample < sample))
                              .order_by(BEATS.c.sample.desc()).limit(1),
                              select(BEATS.c.id, BEATS.c.sample).where(mine & (BEATS.c.sample >= sample))
                              .order_by(BEATS.c.sample).limit(1)):
                    row = conn.execute(query).first()
                    if row is not None:
                        best = min(best or (abs(row.sample - sample), row.sample, row.id),
                                   (abs(row.sample - sample), row.sample, row.id))
        return None if best is None else int(best[2])

    @_reading
    def removed_versions(self, up_to: int | None = None) -> list[tuple[str, int]]:
        """(name, generation that added it) of the record versions replaced at or before ``up_to``
        (default: this catalog's generation) whose rows are not collected yet: what a vector
        store shared by generations (Milvus) must hide from this generation's readers."""
        g = self.generation if up_to is None else int(up_to)
        query = select(RECORDS.c.name, RECORDS.c.added_gen).where(RECORDS.c.removed_gen.is_not(None)
                                                                 & (RECORDS.c.removed_gen <= g))
        with self.engine.connect() as conn:
            return [(r.name, int(r.added_gen)) for r in conn.execute(query)]

    @_reading
    def ids(self) -> np.ndarray:
        """Every beat id, sorted (what opening an index checks against the vectors).

        A record's beats get consecutive ids, so the ids are first read as one
        ``(lowest, highest, count)`` row per record, a few milliseconds where listing
        100,000 beats takes a tenth of a second; only a catalog in which some record's ids
        are not one unbroken run is listed beat by beat. Either way the answer is exact.
        """
        runs = (select(func.min(BEATS.c.id), func.max(BEATS.c.id), func.count())
                .join(RECORDS).where(self._alive()).group_by(BEATS.c.record_id))
        with self.engine.connect() as conn:
            spans = np.array(conn.execute(runs).all(), dtype=np.int64).reshape(-1, 3)
            if np.all(spans[:, 1] - spans[:, 0] + 1 == spans[:, 2]):
                spans = spans[np.argsort(spans[:, 0], kind="stable")]
                return np.concatenate([np.arange(low, high + 1, dtype=np.int64) for low, high, _ in spans]
                                      ) if len(spans) else np.empty(0, np.int64)
            query = select(BEATS.c.id).join(RECORDS).where(self._alive()).order_by(BEATS.c.id)
            return np.fromiter(conn.execute(query).scalars(), dtype=np.int64)

    @_reading
    def beats(self, *, ids: np.ndarray | None = None, record: str | None = None) -> dict[str, np.ndarray]:
        """Beat columns as arrays, for the given ids (in that order) or for one record.

        Raises
        ------
        BeatNotFoundError
            Some of ``ids`` name no beat: never stored, or their record was replaced
            (ids are never reused, so a saved id never names another beat).
        """
        query = (select(BEATS.c.id, RECORDS.c.name.label("record"), BEATS.c.sample, BEATS.c.time, BEATS.c.lead,
                        BEATS.c.symbol, BEATS.c.aami, BEATS.c.rr_prev, BEATS.c.rr_next, BEATS.c.rr_local,
                        BEATS.c.label_source, BEATS.c.confidence).join(RECORDS).where(self._alive()))
        if record is not None:
            query = query.where(RECORDS.c.name == record).order_by(BEATS.c.sample)
        if ids is not None:
            wanted = [int(i) for i in np.unique(np.asarray(ids, dtype=np.int64))]
            rows = []
            with self.engine.connect() as conn:
                for start in range(0, len(wanted), SQL_BATCH):
                    rows += conn.execute(query.where(BEATS.c.id.in_(wanted[start:start + SQL_BATCH]))).all()
            by_id = {r.id: r for r in rows}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                                            else "")
                raise BeatNotFoundError(f"no beat with id {shown} in the index (never stored, or its record was "
                                        "replaced)")
            rows = [by_id[int(i)] for i in ids]
        else:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        return {name: np.array([getattr(r, name) for r in rows], dtype=object) for name in BEAT_FIELDS}

    @_reading
    def beat_refs(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """``record``, ``sample`` and ``aami`` ('' where unlabeled) of many beat ids, as arrays
        in the order (and shape) of ``ids``: the neighbors of a whole recording in one or a
        few queries.

        Ids are read by ``IN`` lists of :data:`SQL_BATCH`, or, when they are more than one in
        :data:`BULK_SHARE` of the catalog's beats, by one scan of every beat (a 24-hour
        recording's 300,000 neighbor ids name most of a 10^5-beat index: one query
        instead of 600).

        Raises
        ------
        BeatNotFoundError
            Some of ``ids`` name no beat.
        """
        ids = np.asarray(ids, dtype=np.int64)
        wanted = np.unique(ids)
        columns = (BEATS.c.id, RECORDS.c.name, BEATS.c.sample, BEATS.c.aami)
        query = select(*columns).join(RECORDS).where(self._alive())
        rows = []
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(BEATS).join(RECORDS).where(self._alive())).scalar()
            if wanted.size * BULK_SHARE >= (total or 0):
                rows = conn.execute(query).all()
            else:
                listed = wanted.tolist()
                for start in range(0, len(listed), SQL_BATCH):
                    rows += conn.execute(query.where(BEATS.c.id.in_(listed[start:start + SQL_BATCH]))).all()
        found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        order = np.argsort(found, kind="stable")
        found = found[order]
        pos = np.clip(np.searchsorted(found, ids), 0, max(found.size - 1, 0))
        hit = (found[pos] == ids) if found.size else np.zeros(ids.shape, dtype=bool)
        if not hit.all():
            missing = np.unique(ids[~hit])
            shown = ", ".join(map(str, missing[:10].tolist())) + (f" and {missing.size - 10} more" if missing.size > 10
                                                                  else "")
            raise BeatNotFoundError(f"no beat with id {shown} in the index (never stored, or its record was replaced)")
        records = np.array([r[1] for r in rows], dtype=object)[order]
        samples = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))[order]
        aami = np.array([r[3] or "" for r in rows], dtype="<U1")[order]
        return {"record": records[pos], "sample": samples[pos], "aami": aami[pos]}

    @_reading
    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(beat ids, AAMI letters with '' where unlabeled, record names) of every beat."""
        query = select(BEATS.c.id, BEATS.c.aami, RECORDS.c.name).join(RECORDS).where(self._alive())
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.array([r[1] or "" for r in rows], dtype="<U1"), np.array([r[2] for r in rows], dtype=object)

    @_reading
    def counts(self) -> dict:
        """Records, beats, beats per class and per label source."""
        alive = select(BEATS.c.aami, BEATS.c.label_source).join(RECORDS).where(self._alive()).subquery()
        with self.engine.connect() as conn:
            by_class = dict(conn.execute(select(alive.c.aami, func.count()).group_by(alive.c.aami)).all())
            by_source = dict(conn.execute(select(alive.c.label_source, func.count())
                                          .group_by(alive.c.label_source)).all())
            n_records = conn.execute(select(func.count()).select_from(RECORDS).where(self._alive())).scalar()
        return {"records": n_records, "beats": sum(by_class.values()),
                "by_class": {(k or "unlabeled"): v for k, v in sorted(by_class.items(), key=lambda kv: kv[0] or "~")},
                "by_label_source": by_source}


def _printable(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given: it holds no parsed password to hide
        return url
