"""SQLite writers take turns through a file lock, so the next one starts the moment the
previous one ends.

SQLite lets one transaction write at a time. A second ``BEGIN IMMEDIATE`` waits in
SQLite's busy handler, which sleeps 1, 2, 5, … up to 100 ms between tries; with several
processes writing (gunicorn workers, the delivery worker) a writer can keep missing the
lock and wait hundreds of milliseconds while others write. Here each write transaction
first takes an exclusive ``flock`` on ``<database>-writers.lock``: the kernel wakes the
next waiter as soon as the holder's ``COMMIT`` or ``ROLLBACK`` releases it.

A thread that already holds a turn through one connection and begins writing on another
does not wait for itself: that connection goes straight to ``BEGIN IMMEDIATE`` and
SQLite's busy timeout decides, as before.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

_threads = threading.local()


def _turns_of_this_thread() -> list[int]:
    """A per-thread counter of held turns (a list, so a connection can keep a reference
    to the counter of the thread that took its turn)."""
    counter = getattr(_threads, "turns", None)
    if counter is None:
        counter = _threads.turns = [0]
    return counter


def writers_lock_path(database: str | None) -> str | None:
    """The lock file beside a database file; None for in-memory and URI databases."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writers.lock"


class TurnTakingConnection(sqlite3.Connection):
    """A ``sqlite3`` connection whose write transactions take turns across processes.

    ``configure_engine`` enables the turns on connect and calls ``take_write_turn``
    before each ``BEGIN IMMEDIATE``; ``commit``, ``rollback`` and ``close`` end the turn.
    """

    _turn_fd: int | None = None
    _turn_counter: list[int] | None = None

    def enable_turns(self, lock_path: str) -> None:
        self._turn_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def take_write_turn(self) -> None:
        if self._turn_fd is None or self._turn_counter is not None:
            return
        counter = _turns_of_this_thread()
        if counter[0]:
            return  # this thread writes through another connection: never wait for itself
        fcntl.flock(self._turn_fd, fcntl.LOCK_EX)
        counter[0] += 1
        self._turn_counter = counter

    def end_write_turn(self) -> None:
        counter, self._turn_counter = self._turn_counter, None
        if counter is not None:
            counter[0] -= 1
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_write_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_write_turn()

    def close(self) -> None:
        try:
            self.end_write_turn()
            if self._turn_fd is not None:
                os.close(self._turn_fd)
                self._turn_fd = None
        finally:
            super().close()

    def __del__(self) -> None:
        # A connection dropped without close() must not keep its turn: closing the file
        # releases the lock.
        if self._turn_fd is not None:
            os.close(self._turn_fd)
            self._turn_fd = None
