#!/usr/bin/python3
"""Replay historical logs through fail2ban's own code and print its bans.

fail2ban-server reads time from the wall clock, so it cannot be pointed at
yesterday's logs. This script runs the parts of fail2ban that decide bans,
in one process, with fail2ban's clock (MyTime) set to each log line's time:

  1. Configuration: fail2ban's Configurator reads a copy of the stock
     configuration (default /etc/fail2ban: jail.conf, jail.d/*, filter.d/*)
     with one override file that enables the jails asked for, sets postfix's
     mode and points logpath at the files replayed. It produces the same
     command stream fail2ban-client sends to the server.
  2. Server: the stream is applied by fail2ban's Transmitter to an
     in-process fail2ban Server that is never started (no threads, no
     socket, no database). Skipped: global logging/database/socket
     settings, addlogpath (this script feeds the lines), addjournalmatch
     (systemd backend only), the firewall actions (replaced by one Python
     action, below) and start.
  3. Lines: both files are read with fail2ban's FileContainer and merged by
     time stamp. For each line: MyTime.setTime(the line's time); every jail
     that watches the file first expires bans (Actions.__checkUnBan), then
     gets the line through Filter.processLineAndAdd (fail2ban's date
     detector, prefregex, failregex, ignoreregex, multi-line ids,
     FailManager counting with maxretry/findtime), then turns fail tickets
     into bans (Actions.__checkBan, BanManager with bantime). These are the
     calls fail2ban's own actions thread makes, done synchronously, as
     fail2ban's test suite does (tests/dummyjail.py): bans take effect with
     no delay, which favours fail2ban slightly.
  4. Bans: a Python action (class Action below, added with Actions.add like
     any action.d/*.py) records every ban fail2ban issues: the address, the
     time, and the end fail2ban computed (ticket time + bantime).
  5. Firewall model: a banned address's new connections to the jail's ports
     would be dropped, so the daemons would not log them. The logs replayed
     were written without any defence, so the script drops the failures of
     an address while it is banned in that jail (a wrapper around the jail's
     FailManager.addFailure). Rampart does the same: its engine does not
     count events of banned addresses. Without this, fail2ban would keep
     seeing a banned brute-forcer and prolong its ban forever, which no
     real firewall lets happen.

Output: one JSON object per ban, as `rampart replay --json` prints them:
  {"ip": "...", "time": "RFC 3339", "duration_s": N, "scenario": "JAIL",
   "reason": "..."}

Year-less syslog stamps are dated with --year; the script runs in UTC
(TZ=UTC), as rotation.sh runs rampart.
"""

import os
import time

os.environ["TZ"] = "UTC"
time.tzset()

import argparse  # noqa: E402
import calendar  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from fail2ban.server.action import ActionBase  # noqa: E402
from fail2ban.server.mytime import MyTime  # noqa: E402

MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}


class Action(ActionBase):
    """Records fail2ban's bans; loaded by fail2ban's Actions.add."""

    def __init__(self, jail, name, sink=None):
        super().__init__(jail, name)
        self.sink = sink

    def start(self):
        pass

    def stop(self):
        pass

    def ban(self, aInfo):
        now = MyTime.time()
        bantime = aInfo["bantime"]
        end = None if bantime < 0 else aInfo["time"] + bantime
        self.sink.append({
            "now": now, "ip": str(aInfo["ip"]), "end": end, "jail": self._jail.name,
            "failures": aInfo["failures"],
        })

    def unban(self, aInfo):
        pass


def syslog_time(line, year):
    """The time of an RFC 3164 line ("Mar 10 06:00:15 host ...") in UTC."""
    try:
        mon = MONTHS[line[0:3]]
        day = int(line[4:6])
        h, m, s = int(line[7:9]), int(line[10:12]), int(line[13:15])
    except (KeyError, ValueError):
        return None
    return calendar.timegm((year, mon, day, h, m, s, 0, 0, 0))


class Counter(logging.Handler):
    """Counts fail2ban's warnings and errors by message."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.counts = {}

    def emit(self, record):
        key = record.levelname + ": " + str(record.msg)[:90]
        self.counts[key] = self.counts.get(key, 0) + 1


def configure(confdir, files, jails, postfix_mode):
    """Copy the configuration, add the override, return the command stream."""
    from fail2ban.client.configurator import Configurator

    tmp = tempfile.mkdtemp(prefix="f2b-replay-")
    conf = os.path.join(tmp, "fail2ban")
    shutil.copytree(confdir, conf)
    override = []
    for j in ("sshd", "postfix", "dovecot"):
        if j not in jails:
            override += ["[%s]" % j, "enabled = false", ""]
    for j in jails:
        override.append("[%s]" % j)
        override.append("enabled = true")
        override.append("logpath = %s" % files[j])
        if j == "postfix" and postfix_mode:
            override.append("mode = %s" % postfix_mode)
        override.append("")
    with open(os.path.join(conf, "jail.d", "zz-bench-replay.local"), "w") as f:
        f.write("\n".join(override))
    c = Configurator()
    c.setBaseDir(conf)
    c.readAll()
    c.getOptions()
    c.convertToProtocol()
    stream = c.getConfigStream()
    shutil.rmtree(tmp)
    return stream, override


SKIP_GLOBAL = {"syslogsocket", "loglevel", "logtarget", "dbfile", "dbmaxmatches", "dbpurgeage"}
SKIP_JAIL = {"addlogpath", "addjournalmatch", "addaction", "action"}


def build_server(stream, jails):
    from fail2ban.server.server import Server
    from fail2ban.server.transmitter import Transmitter

    server = Server()
    transm = Transmitter(server)
    applied = []
    for cmd in stream:
        if cmd[0] == "start":
            continue
        if cmd[0] == "add" and cmd[1] not in jails:
            raise SystemExit("f2b_replay: the configuration enables jail %r too; disable it or add it to --jails" % cmd[1])
        if cmd[0] in ("set", "multi-set"):
            if cmd[1] in SKIP_GLOBAL or (cmd[1] in jails and cmd[2] in SKIP_JAIL):
                continue
        ret = transm.proceed(cmd)
        if ret[0] != 0:
            raise SystemExit("f2b_replay: fail2ban refused %r: %r" % (cmd[:3], ret[1]))
        applied.append(cmd)
    return server, server._Server__jails, applied


def firewall(jail, dropped):
    """Drop failures of addresses the jail has banned (see the module doc)."""
    fm = jail.filter.failManager
    add = fm.addFailure
    banned = jail.actions.banManager

    def addFailure(ticket, count=1, observed=False):
        if banned._inBanList(ticket):
            dropped[jail.name] = dropped.get(jail.name, 0) + 1
            return 0
        return add(ticket, count, observed)

    fm.addFailure = addFailure


def lines_of(path, encoding, year):
    """Yield (time, order, line) for each line of path, read like fail2ban."""
    from fail2ban.server.filter import FileContainer

    fc = FileContainer(path, encoding, doOpen=True)
    fc.waitForLineEnd = False
    last = None
    for n, line in enumerate(fc):
        t = syslog_time(line, year)
        if t is None:
            t = last
        if t is None:
            continue
        last = t
        yield t, n, line


def tagged(i, path, lines):
    for t, n, line in lines:
        yield t, i, n, line, path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conf", default="/etc/fail2ban", help="fail2ban configuration to copy (default /etc/fail2ban)")
    ap.add_argument("--auth", required=True, help="auth.log, read by the sshd jail")
    ap.add_argument("--mail", required=True, help="mail.log, read by the postfix and dovecot jails")
    ap.add_argument("--jails", default="sshd,postfix,dovecot")
    ap.add_argument("--postfix-mode", default="aggressive", help="postfix filter mode (stock jail.conf says more)")
    ap.add_argument("--year", type=int, required=True, help="year of the year-less syslog stamps")
    ap.add_argument("-o", "--out", default="-", help="decisions file (default stdout)")
    args = ap.parse_args()

    counter = Counter()
    logging.getLogger("fail2ban").addHandler(counter)
    logging.getLogger("fail2ban").setLevel(logging.WARNING)
    logging.getLogger("fail2ban").propagate = False

    jails = args.jails.split(",")
    files = {"sshd": os.path.abspath(args.auth), "postfix": os.path.abspath(args.mail), "dovecot": os.path.abspath(args.mail)}
    stream, override = configure(args.conf, files, jails, args.postfix_mode)
    server, jailmap, applied = build_server(stream, jails)

    sink, dropped = [], {}
    readers = {}
    for name in jails:
        jail = jailmap[name]
        jail.actions.add("bench-record", os.path.abspath(__file__), {"sink": sink})
        firewall(jail, dropped)
        readers.setdefault(files[name], []).append(jail)

    enc = jailmap[jails[0]].filter.getLogEncoding()
    streams = [tagged(i, path, lines_of(path, enc, args.year)) for i, path in enumerate(sorted(readers))]
    nlines, date_checks, date_mismatch = 0, 0, 0
    start = time.time()
    for t, _, _, line, path in heapq.merge(*streams):
        MyTime.setTime(t)
        nlines += 1
        for jail in readers[path]:
            jail.actions._Actions__checkUnBan(1 << 30)
            if nlines % 997 == 1:
                # fail2ban dates the line itself; check it agrees.
                date_checks += 1
                got = jail.filter.dateDetector.getTime(line)
                if got is None or int(got[0]) != t:
                    date_mismatch += 1
            jail.filter.processLineAndAdd(line)
            jail.actions._Actions__checkBan()
    elapsed = time.time() - start

    out = sys.stdout if args.out == "-" else open(args.out, "w")
    sink.sort(key=lambda b: (b["now"], b["ip"]))
    for b in sink:
        dur = 0 if b["end"] is None else max(1, round(b["end"] - b["now"]))
        out.write(json.dumps({
            "ip": b["ip"],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b["now"])),
            "duration_s": dur,
            "scenario": b["jail"],
            "reason": "%d failures (fail2ban jail %s)" % (b["failures"], b["jail"]),
        }) + "\n")
    if out is not sys.stdout:
        out.close()

    import fail2ban.version
    print("f2b_replay: fail2ban %s, jails %s (%s); %d lines in %.1fs; %d bans; failures dropped while banned: %s; "
          "date checks %d, mismatches %d" % (
              fail2ban.version.version, ",".join(jails), "; ".join(
                  "%s maxretry=%s findtime=%s bantime=%s" % (j, jailmap[j].filter.getMaxRetry(), jailmap[j].filter.getFindTime(),
                                                              jailmap[j].actions.getBanTime()) for j in jails),
              nlines, elapsed, len(sink), dropped or 0, date_checks, date_mismatch), file=sys.stderr)
    for k, v in sorted(counter.counts.items()):
        print("f2b_replay: fail2ban logged %dx %s" % (v, k), file=sys.stderr)
    if date_mismatch:
        sys.exit("f2b_replay: fail2ban dated %d checked lines differently from --year %d" % (date_mismatch, args.year))


if __name__ == "__main__":
    main()
