"""A stage's recorder in a process of its own, fed JSON lines over a pipe.

Importing MLflow and opening its SQL store cost a stage 1.4 s on a 2-core Intel Xeon and 6-8 s
on a 2-core AMD EPYC VM, before any work: in a process of its own, started with the stage, that
cost overlaps the stage's work. The stage writes operations (jtm/tracking/recorder.py) to the
recorder's stdin and never waits, except where it must (`flush`: an artifact is logged before
the stage renames it); the recorder answers on its stdout with warnings and flush marks, which a
thread of the stage collects. An end of input without an "end" operation (the stage was killed)
closes the run as KILLED. Ctrl-C reaches the stage, which ends its run; the recorder ignores it.

    python -m jtm.tracking.process    # what `RecorderProcess` starts
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading

from jtm.tracking.recorder import Recorder


class RecorderProcess:
    """The stage's end of the pipe: `send` an operation, `flush`, `close`; `warnings()` so far."""

    def __init__(self):
        self._process = subprocess.Popen(
            [sys.executable, "-m", "jtm.tracking.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._warnings: queue.SimpleQueue = queue.SimpleQueue()
        self._flushed: queue.Queue = queue.Queue()
        self._flushes = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send(self, op: dict) -> None:
        try:
            self._process.stdin.write(json.dumps(op) + "\n")
            self._process.stdin.flush()
        except (OSError, ValueError):  # the recorder is gone: the reader has said why, or will
            pass

    def flush(self) -> None:
        """Wait until the recorder has applied every operation sent so far (or is gone)."""
        self._flushes += 1
        self.send({"op": "flush", "id": self._flushes})
        while (done := self._flushed.get()) is not None and done < self._flushes:
            pass
        if done is None:
            self._flushed.put(None)  # gone for good: later flushes return at once

    def close(self) -> None:
        """Let the recorder finish what it was sent (up to its "end"), and wait for it."""
        try:
            self._process.stdin.close()
        except OSError:
            pass
        self._process.wait()
        self._reader.join()

    def warnings(self) -> list[str]:
        """The warnings received since the last call."""
        taken = []
        while not self._warnings.empty():
            taken.append(self._warnings.get())
        return taken

    def _read(self) -> None:
        try:
            for line in self._process.stdout:
                reply = json.loads(line)
                if "warning" in reply:
                    self._warnings.put(reply["warning"])
                else:
                    self._flushed.put(reply["done"])
        finally:  # nothing more will come: no flush may wait for it
            self._flushed.put(None)
        if self._process.wait() != 0:
            self._warnings.put(f"MLflow: the recorder process exited with {self._process.returncode}")


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever MLflow prints goes to the stage's stderr, never into the replies
    recorder, ended = Recorder(), False
    for line in sys.stdin:
        op = json.loads(line)
        if op["op"] == "flush":
            replies.write(json.dumps({"done": op["id"]}) + "\n")
            continue
        if (warning := recorder.apply(op)) is not None:
            replies.write(json.dumps({"warning": warning}) + "\n")
        if ended := op["op"] == "end":  # done, even if a forked worker of the stage still holds the pipe
            break
    if not ended and (warning := recorder.apply({"op": "end", "status": "KILLED"})) is not None:
        print(warning, file=sys.stderr)


if __name__ == "__main__":
    main()
