#!/usr/bin/python3
"""Run fail2ban's own filter code over the conformance corpus.

For each request on stdin, one JSON object per line:
  {"filter": NAME, "mode": MODE or "", "log": PATH}
it loads NAME from the fail2ban configuration directory (argv[1]) with
fail2ban's FilterReader (mode as the filter option, logtype file), feeds
every line of PATH to a fail2ban Filter through processLine (the daemon's
defaults: first failregex wins, pending multi-line failures ignored; dates
are not checked against the clock), and prints one JSON object:
  {"filter": NAME, "mode": MODE, "matches": {"LINE": "ADDRESS", ...},
   "error": "..." (only when the filter could not be loaded)}
The conformance test compares Rampart's imported filters with this.
"""

import json
import sys

from fail2ban.client.filterreader import FilterReader
from fail2ban.server.filter import Filter, FileContainer


def build(confdir, name, mode):
    opts = {"mode": mode} if mode else {}
    reader = FilterReader(name, "oracle", opts, share_config={}, basedir=confdir)
    if not reader.read():
        raise ValueError("cannot read filter %s" % name)
    reader.applyAutoOptions("auto")
    reader.getOptions(None)
    flt = Filter(None)
    flt.checkFindTime = False
    flt.ignorePending = True
    flt.returnRawHost = True
    flt.checkAllRegex = False
    for cmd in reader.convert():
        vals = cmd[3] if cmd[0] == "multi-set" else [cmd[3]]
        opt = cmd[2]
        for v in vals:
            if opt == "prefregex":
                flt.prefRegex = v
            elif opt == "addfailregex":
                flt.addFailRegex(v)
            elif opt == "addignoreregex":
                flt.addIgnoreRegex(v)
            elif opt == "maxlines":
                flt.setMaxLines(v)
            elif opt == "datepattern":
                flt.setDatePattern(v)
            elif opt == "usedns":
                flt.setUseDns(v)
    return flt


def main():
    confdir = sys.argv[1]
    for req in sys.stdin:
        req = json.loads(req)
        out = {"filter": req["filter"], "mode": req["mode"], "matches": {}}
        try:
            flt = build(confdir, req["filter"], req["mode"])
            fc = FileContainer(req["log"], "utf-8", doOpen=True)
            fc.waitForLineEnd = False
            for n, line in enumerate(fc, 1):
                line = line.rstrip("\r\n")
                try:
                    found = flt.processLine(line)
                except Exception:
                    continue
                for f in found:
                    if f[1] is not None:
                        out["matches"][str(n)] = str(f[1])
                        break
        except Exception as e:
            out["error"] = repr(e)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
