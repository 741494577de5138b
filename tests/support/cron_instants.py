#!/usr/bin/env python3
"""An independent cron implementation (croniter, with cron's day-of-month OR day-of-week rule,
and Python's zoneinfo for time zones) as a test oracle: prints every instant of the given cron expressions in (FROM, UNTIL], in ZONE,
as RFC 3339 UTC, sorted and without repeats.

    cron_instants.py ZONE FROM UNTIL EXPRESSION...
"""
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from croniter import croniter


def instants(expression, zone, start, until):
    # croniter matches fields on naive local times (its own zone arithmetic slips by an hour
    # around DST changes); zoneinfo then places each local time: a time that does not exist is
    # skipped, one that exists twice is taken at its first occurrence (fold=0).
    local_start = start.astimezone(zone).replace(tzinfo=None)
    local_until = until.astimezone(zone).replace(tzinfo=None)
    it = croniter(expression, local_start, day_or=True)
    while True:
        naive = it.get_next(datetime)
        if naive > local_until:
            return
        placed = naive.replace(tzinfo=zone, fold=0)
        if placed.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != naive:
            continue
        t = placed.astimezone(timezone.utc)
        if start < t <= until:
            yield t


def main():
    zone = ZoneInfo(sys.argv[1])
    start = datetime.fromisoformat(sys.argv[2])
    until = datetime.fromisoformat(sys.argv[3])
    found = set()
    for expression in sys.argv[4:]:
        found.update(instants(expression, zone, start, until))
    for t in sorted(found):
        print(t.strftime("%Y-%m-%dT%H:%M:%SZ"))


if __name__ == "__main__":
    main()
