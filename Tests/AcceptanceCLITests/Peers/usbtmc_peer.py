"""Queries a USBTMC instrument with a reference client library, for comparison tests and benchmarks.

Run with the `python3` first on PATH (it has python-usbtmc, pyvisa-py and pyusb), under the umockdev preload:

  LD_PRELOAD=libumockdev-preload.so.0 UMOCKDEV_DIR=<dir> python3 usbtmc_peer.py --library usbtmc|pyvisa \
      --resource VID:PID:SERIAL --query CMD [--query CMD ...] [--repeat N] [--timeout MS]

Prints one JSON object: {"library": ..., "answers": [...], "seconds": S, "queries": Q} where answers (stripped) are
in order, the query list repeated N times, and S is the time for all queries (opening the device excluded).
On failure it prints {"library": ..., "error": "...", "answers": [answers so far], ...} and exits 1.
"""
import argparse, json, sys, time, warnings


def open_usbtmc(vid, pid, serial, timeout_ms):
    import usbtmc
    instrument = usbtmc.Instrument(vid, pid, serial)
    instrument.timeout = timeout_ms / 1000.0
    instrument.open()
    return instrument.ask, instrument.close


def open_pyvisa(vid, pid, serial, timeout_ms):
    import pyvisa
    manager = pyvisa.ResourceManager("@py")
    instrument = manager.open_resource("USB0::0x%04X::0x%04X::%s::INSTR" % (vid, pid, serial))
    instrument.timeout = timeout_ms
    return instrument.query, instrument.close


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", choices=("usbtmc", "pyvisa"), required=True)
    parser.add_argument("--resource", required=True, help="VID:PID:SERIAL, ids in hex")
    parser.add_argument("--query", action="append", required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=5000, help="I/O timeout in milliseconds")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    vid, pid, serial = args.resource.split(":", 2)
    result = {"library": args.library, "answers": [], "seconds": 0.0, "queries": 0}
    try:
        opener = open_usbtmc if args.library == "usbtmc" else open_pyvisa
        ask, close = opener(int(vid, 16), int(pid, 16), serial, args.timeout)
        try:
            start = time.perf_counter()
            for _ in range(args.repeat):
                for query in args.query:
                    result["answers"].append(ask(query).strip())
                    result["queries"] += 1
            result["seconds"] = time.perf_counter() - start
        finally:
            close()
    except Exception as error:  # report any client failure as data, for the test to judge
        result["error"] = "%s: %s" % (type(error).__name__, error)
        print(json.dumps(result), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
