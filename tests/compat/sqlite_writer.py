"""A custom writer used by the tests (and the shape docs/writers.md shows): records in SQLite,
keyed by (step_id, row_id) so that a record delivered again on resume replaces itself."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from chainette.io.record_writer import RecordWriter


class SQLiteWriter(RecordWriter):
    def __init__(self, output_dir):
        self.path = Path(output_dir) / "results.sqlite" if Path(output_dir).suffix != ".sqlite" else Path(output_dir)
        self.calls: list[str] = []

    def init(self, graph, run):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (step_id TEXT, row_id TEXT, data TEXT, PRIMARY KEY (step_id, row_id))"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS errors (step_id TEXT, row_id TEXT, data TEXT, PRIMARY KEY (step_id, row_id))"
        )
        self.db.commit()
        self.calls.append("init:resumed" if run.resumed else "init")

    def write_step(self, step_id, records):
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                [(step_id, r["row_id"], json.dumps(r)) for r in records],
            )

    def write_errors(self, records):
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO errors VALUES (?, ?, ?)",
                [(r["step_id"], r["row_id"], json.dumps(r)) for r in records],
            )

    def forget_rows(self, row_ids):
        with self.db:
            for rid in row_ids:
                for table in ("records", "errors"):
                    self.db.execute(f"DELETE FROM {table} WHERE row_id = ? OR row_id LIKE ?", (rid, rid + ".%"))
        self.calls.append(f"forget:{len(row_ids)}")

    def finalize(self):
        self.db.close()
        self.calls.append("finalize")


def rows(path, table="records"):
    db = sqlite3.connect(path)
    try:
        return [(s, r, json.loads(d)) for s, r, d in db.execute(f"SELECT step_id, row_id, data FROM {table}")]
    finally:
        db.close()
