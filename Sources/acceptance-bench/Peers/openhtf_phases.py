"""OpenHTF's cost per trivial phase, for acceptance-bench to print beside the runner's own cost per trivial step.

Usage: python3 openhtf_phases.py PHASES ROUNDS
Prints one line: the median microseconds per phase over ROUNDS runs of a test of PHASES no-op phases (after one
warm-up run), with no output callbacks and console logging off, as OpenHTF runs when nothing watches.
"""
import contextlib
import io
import logging
import statistics
import sys
import time

import openhtf as htf
from openhtf.util import logs


def main() -> None:
    phases, rounds = int(sys.argv[1]), int(sys.argv[2])
    logs.CLI_LOGGING_VERBOSITY = 0
    logging.getLogger("openhtf").setLevel(logging.CRITICAL)
    logging.getLogger().setLevel(logging.CRITICAL)

    def trivial():
        """A phase that does nothing: what is left is the framework's own cost."""

    descriptors = [htf.PhaseDescriptor.wrap_or_copy(trivial, name=f"phase_{i}") for i in range(phases)]
    per_phase = []
    for round_number in range(rounds + 1):
        test = htf.Test(*descriptors)
        # OpenHTF prints an outcome banner; it is not part of the phase cost and not ours to show.
        with contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            test.execute(test_start=lambda: "BENCH-SERIAL")
            elapsed = time.perf_counter() - start
        if round_number > 0:
            per_phase.append(elapsed / phases * 1e6)
    print(f"{statistics.median(per_phase):.1f}")


if __name__ == "__main__":
    main()
