"""Results files: JSON-lines records of finished runs, read back with damaged lines skipped,
appended one fsync'd line at a time, and guarded by a lock so that one sweep writes a file."""
from __future__ import annotations

import json
import os
import warnings

from .._files import write_target

__all__ = ["STATUSES", "load_records", "append_record", "lock_path"]

#: What a run can end as.
STATUSES = ("ok", "diverged", "failed")


def load_records(path) -> list:
    """Records from a JSON-lines results file.

    A torn last line (a run killed while writing it) is skipped silently. A damaged line
    elsewhere (bytes that are not UTF-8, text that is not JSON, JSON that is not a record) is
    skipped with a warning naming the line: the records around it are kept, and a resumed
    sweep runs the configuration it held (if any) again.
    """
    records, by_key = [], {}
    if not path or not os.path.exists(path):
        return records
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                problem = _record_problem(record)
            except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError
                problem = f"not a JSON line ({exc})"
            if problem is None:
                # One record per run key (the last written: a retried run's): two runs into one
                # file must not count a configuration twice in a table.
                if record["key"] in by_key:
                    records[by_key[record["key"]]] = record
                else:
                    by_key[record["key"]] = len(records)
                    records.append(record)
            elif line.endswith(b"\n"):  # not the torn end of a killed write
                warnings.warn(f"{path}, line {number}: {problem}; skipped (a sweep runs its configuration, "
                              f"if any, again)", stacklevel=2)
    return records


def _record_problem(record):
    """What makes ``record`` unusable as a sweep record (None if nothing)."""
    if not isinstance(record, dict):
        return f"not a record but {type(record).__name__} {str(record)[:60]}"
    if not isinstance(record.get("key"), str) or not isinstance(record.get("config"), dict):
        return "a record without key or config"
    if record.get("status") not in STATUSES:
        return f"a record with status {record.get('status')!r}, not one of {list(STATUSES)}"
    config = record["config"]
    for field, kind, text in [("depth", int, "an integer"), ("seed", int, "an integer"),
                              ("activation", str, "a string"), ("optimizer", str, "a string")]:
        if field in config and (not isinstance(config[field], kind) or isinstance(config[field], bool)):
            return f"config field {field!r} is {config[field]!r}, not {text}"
    if record["status"] == "ok":  # what the tables compute with
        for field in ("final_error", "final_loss"):
            value = record.get(field, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"field {field!r} of an ok record is {value!r}, not a number"
    return None


def append_record(path, record):
    """Append ``record`` as one JSON line to the results file ``path``, flushed to disk before
    returning: a sweep killed later loses no finished run."""
    write_target(path)  # a FIFO swapped in would block the open, a device swallow the record
    with open(path, "a+", encoding="utf-8") as f:
        if f.tell() > 0:  # a run killed mid-write leaves a torn line: start on a fresh one
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        f.write(json.dumps(record, allow_nan=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def lock_path(path):
    """The lock file that guards the output ``path`` (a hidden file beside it)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{name}.lock")
