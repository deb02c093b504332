"""Beat metadata in SQL (SQLAlchemy 2): records, beats, labels and their provenance.

A beat's primary key is also its FAISS id, so a search hit maps to its row directly.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from sqlalchemy import Float, ForeignKey, Integer, String, create_engine, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..errors import IndexFormatError, reason
from ..signal.beats import Beats

class Base(DeclarativeBase):
    pass


class RecordRow(Base):
    __tablename__ = "records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    path: Mapped[str] = mapped_column(String(1024))
    lead: Mapped[str] = mapped_column(String(64))
    fs: Mapped[float] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column(Integer)
    n_beats: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[str] = mapped_column(String(32))


class BeatRow(Base):
    __tablename__ = "beats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    sample: Mapped[int] = mapped_column(Integer)
    time: Mapped[float] = mapped_column(Float)
    lead: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str | None] = mapped_column(String(4), nullable=True)
    aami: Mapped[str | None] = mapped_column(String(1), nullable=True, index=True)
    rr_prev: Mapped[float] = mapped_column(Float)
    rr_next: Mapped[float] = mapped_column(Float)
    rr_local: Mapped[float] = mapped_column(Float)
    label_source: Mapped[str] = mapped_column(String(16))
    """reference (the record's annotation file), expert (`annotate --labels`),
    propagated (label propagation, with a confidence) or none (unlabeled)."""
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)


BEAT_FIELDS = ("id", "record", "sample", "time", "lead", "symbol", "aami", "rr_prev", "rr_next", "rr_local",
               "label_source", "confidence")


class Catalog:
    """Records and beats in any SQLAlchemy database (SQLite file by default)."""

    def __init__(self, url: str):
        self.url = url
        try:
            self.engine = create_engine(url)
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise IndexFormatError(f"catalog {url}: {reason(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def replace_record(self, beats: Beats, *, path: str, n_samples: int, label_source: np.ndarray | str,
                       confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Insert a record's beats, replacing any earlier version of the record.

        Samples are stored at the record's own rate (what a user's viewer shows).
        Returns (new beat ids, ids of the beats removed), for the vector index to follow.
        """
        n = len(beats)
        fs, samples = beats.fs, beats.samples
        sources = np.broadcast_to(np.asarray(label_source, dtype=object), (n,))
        with self.engine.begin() as conn:
            old = conn.execute(select(RecordRow.id).where(RecordRow.name == beats.record)).scalar()
            removed = np.empty(0, dtype=np.int64)
            if old is not None:
                removed = np.array(conn.execute(select(BeatRow.id).where(BeatRow.record_id == old)).scalars().all(),
                                   dtype=np.int64)
                conn.execute(delete(BeatRow).where(BeatRow.record_id == old))
                conn.execute(delete(RecordRow).where(RecordRow.id == old))
            record_id = conn.execute(insert(RecordRow).values(
                name=beats.record, path=path, lead=beats.lead, fs=fs, n_samples=n_samples, n_beats=n,
                added_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))).inserted_primary_key[0]
            first = (conn.execute(select(func.max(BeatRow.id))).scalar() or 0) + 1
            ids = np.arange(first, first + n, dtype=np.int64)
            if n:
                conn.execute(insert(BeatRow), [
                    {"id": int(ids[i]), "record_id": record_id, "sample": int(samples[i]),
                     "time": float(beats.samples[i] / beats.fs), "lead": beats.lead,
                     "symbol": beats.symbols[i] or None, "aami": beats.aami[i] or None,
                     "rr_prev": float(beats.context[i, 0]), "rr_next": float(beats.context[i, 1]),
                     "rr_local": float(beats.context[i, 2]), "label_source": str(sources[i]),
                     "confidence": None if confidence is None else float(confidence[i])}
                    for i in range(n)])
        return ids, removed

    def record(self, name: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(RecordRow).where(RecordRow.name == name)).mappings().first()
        return dict(row) if row else None

    def records(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(RecordRow).order_by(RecordRow.name)).mappings()]

    def nearest_beat(self, record: str, sample: int) -> int | None:
        """Id of the record's beat whose R-peak is nearest ``sample`` (None: no beats)."""
        query = (select(BeatRow.id).join(RecordRow).where(RecordRow.name == record)
                 .order_by(func.abs(BeatRow.sample - int(sample))).limit(1))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def beats(self, *, ids: np.ndarray | None = None, record: str | None = None) -> dict[str, np.ndarray]:
        """Beat columns as arrays, for the given ids (in that order) or for one record."""
        query = select(BeatRow.id, RecordRow.name.label("record"), BeatRow.sample, BeatRow.time, BeatRow.lead,
                       BeatRow.symbol, BeatRow.aami, BeatRow.rr_prev, BeatRow.rr_next, BeatRow.rr_local,
                       BeatRow.label_source, BeatRow.confidence).join(RecordRow)
        if record is not None:
            query = query.where(RecordRow.name == record).order_by(BeatRow.sample)
        if ids is not None:
            wanted = [int(i) for i in np.unique(ids)]
            rows = []
            with self.engine.connect() as conn:
                for start in range(0, len(wanted), 500):  # SQL parameter limits
                    rows += conn.execute(query.where(BeatRow.id.in_(wanted[start:start + 500]))).all()
            by_id = {r.id: r for r in rows}
            rows = [by_id[int(i)] for i in ids if int(i) in by_id]
        else:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        return {name: np.array([getattr(r, name) for r in rows], dtype=object) for name in BEAT_FIELDS}

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(beat ids, AAMI letters with '' where unlabeled, record names) of every beat."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(BeatRow.id, BeatRow.aami, RecordRow.name).join(RecordRow)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.array([r[1] or "" for r in rows], dtype="<U1"), np.array([r[2] for r in rows], dtype=object)

    def counts(self) -> dict:
        with self.engine.connect() as conn:
            by_class = dict(conn.execute(select(BeatRow.aami, func.count()).group_by(BeatRow.aami)).all())
            by_source = dict(conn.execute(select(BeatRow.label_source, func.count()).group_by(BeatRow.label_source)).all())
            n_records = conn.execute(select(func.count()).select_from(RecordRow)).scalar()
        return {"records": n_records, "beats": sum(by_class.values()),
                "by_class": {(k or "unlabeled"): v for k, v in sorted(by_class.items(), key=lambda kv: kv[0] or "~")},
                "by_label_source": by_source}
