#!/usr/bin/python3
"""Replay logs through fail2ban's own code, every jail a configuration enables.

The parity test of import-fail2ban runs this on a copy of a fail2ban
configuration (Debian's stock one and a jail.local): each enabled jail reads
the files its logpath names, with fail2ban's clock set to each line's time.
The machinery is bench/f2b_replay.py's, imported from it: fail2ban's
Configurator and Transmitter build an in-process server that is never
started; FileContainer reads the lines, merged by time stamp across files;
every jail watching a file expires bans, gets the line through
processLineAndAdd and turns tickets into bans, synchronously; a banned
address's failures are dropped in its jail (the firewall would have
dropped them); a Python action records every ban.

Output: one JSON object per ban:
  {"ip": "...", "time": "RFC 3339", "duration_s": N, "jail": "..."}
and with --failures FILE, one per failure fail2ban's filters counted (after
the firewall model), in order:
  {"ip": "...", "time": "RFC 3339", "jail": "...", "count": N}
Jails on the systemd backend are refused: this reads files.
"""

import argparse
import heapq
import importlib.util
import json
import logging
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
replay_py = os.path.join(here, "..", "..", "..", "bench", "f2b_replay.py")
spec = importlib.util.spec_from_file_location("f2b_replay", replay_py)
f2b_replay = importlib.util.module_from_spec(spec)
spec.loader.exec_module(f2b_replay)  # sets TZ=UTC


def record(jail, failures):
    """Record the failures the jail's FailManager is given (once the
    firewall model has let them through)."""
    fm = jail.filter.failManager
    add = fm.addFailure

    def addFailure(ticket, count=1, observed=False):
        n = add(ticket, count, observed)
        if n:
            failures.append({"ip": str(ticket.getID()), "jail": jail.name, "count": count,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ticket.getTime()))})
        return n

    fm.addFailure = addFailure


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conf", required=True, help="fail2ban configuration directory (read as it is)")
    ap.add_argument("--year", type=int, required=True, help="year of the year-less syslog stamps")
    ap.add_argument("-o", "--out", default="-")
    ap.add_argument("--failures", help="write the failures counted to this file")
    args = ap.parse_args()

    counter = f2b_replay.Counter()
    logging.getLogger("fail2ban").addHandler(counter)
    logging.getLogger("fail2ban").setLevel(logging.WARNING)
    logging.getLogger("fail2ban").propagate = False

    from fail2ban.client.configurator import Configurator
    c = Configurator()
    c.setBaseDir(os.path.abspath(args.conf))
    c.readAll()
    c.getOptions()
    c.convertToProtocol()
    stream = c.getConfigStream()

    jails, files = [], {}
    for cmd in stream:
        if cmd[0] == "add":
            jails.append(cmd[1])
            if cmd[2] != "auto" and cmd[2] != "polling" and cmd[2] != "pyinotify":
                sys.exit("f2b_jails: jail %s has backend %s; give it files" % (cmd[1], cmd[2]))
        elif cmd[0] == "set" and len(cmd) > 3 and cmd[2] == "addlogpath":
            files.setdefault(cmd[1], []).append(cmd[3])
        elif cmd[0] == "multi-set" and cmd[2] == "addlogpath":
            files.setdefault(cmd[1], []).extend(v[0] if isinstance(v, list) else v for v in cmd[3])
    server, jailmap, _ = f2b_replay.build_server(stream, jails)

    sink, dropped, failures = [], {}, []
    readers = {}
    for name in jails:
        jail = jailmap[name]
        jail.actions.add("parity-record", replay_py, {"sink": sink})
        f2b_replay.firewall(jail, dropped)
        record(jail, failures)
        for path in files.get(name, []):
            readers.setdefault(os.path.abspath(path), []).append(jail)

    enc = jailmap[jails[0]].filter.getLogEncoding()
    streams = [f2b_replay.tagged(i, path, f2b_replay.lines_of(path, enc, args.year)) for i, path in enumerate(sorted(readers))]
    nlines = 0
    for t, _, _, line, path in heapq.merge(*streams):
        f2b_replay.MyTime.setTime(t)
        nlines += 1
        for jail in readers[path]:
            jail.actions._Actions__checkUnBan(1 << 30)
            jail.filter.processLineAndAdd(line)
            jail.actions._Actions__checkBan()

    out = sys.stdout if args.out == "-" else open(args.out, "w")
    sink.sort(key=lambda b: (b["now"], b["jail"], b["ip"]))
    for b in sink:
        dur = 0 if b["end"] is None else max(1, round(b["end"] - b["now"]))
        out.write(json.dumps({
            "ip": b["ip"],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b["now"])),
            "duration_s": dur,
            "jail": b["jail"],
        }) + "\n")
    if out is not sys.stdout:
        out.close()
    if args.failures:
        with open(args.failures, "w") as f:
            for fl in failures:
                f.write(json.dumps(fl) + "\n")
    print("f2b_jails: jails %s; %d lines; %d bans; failures dropped while banned: %s" % (
        ",".join(jails), nlines, len(sink), dropped or 0), file=sys.stderr)
    for k, v in sorted(counter.counts.items()):
        print("f2b_jails: fail2ban logged %dx %s" % (v, k), file=sys.stderr)


if __name__ == "__main__":
    main()
