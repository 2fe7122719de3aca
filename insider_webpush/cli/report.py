"""The summary a batch (or the demo) ends with, and its list of failures."""

from __future__ import annotations

from .output import Output
from .progress import Tally


def summary_rows(tally: Tally) -> list[tuple[str, str]]:
    rows = [
        ("pushes", str(tally.done) + (f" of {tally.total}" if tally.total is not None else "")),
        ("succeeded", str(tally.succeeded)),
        ("failed", str(tally.failed)),
        ("  of which ambiguous", str(tally.ambiguous)),
    ]
    if tally.not_sent:
        rows.append(("  of which not sent (after a 401)", str(tally.not_sent)))
    if tally.stopped:
        rows.append(("not sent (stopped first)", str(tally.stopped)))
    if tally.from_journal:
        rows.append(("replayed from the journal", str(tally.from_journal)))
    if tally.resent_certain:
        rows.append(("resent: certain failures", str(tally.resent_certain)))
    if tally.resent_ambiguous:
        rows.append(("resent: ambiguous (--retry-ambiguous)", str(tally.resent_ambiguous)))
    rows += [
        ("elapsed", f"{tally.last - tally.started:.1f} s"),
        ("achieved rate (2nd half)", tally.achieved_rate()),
    ]
    return rows


def print_failures(
    out: Output, tally: Tally, *, journal: str | None = None, failed_out: str | None = None
) -> None:
    """The failures, first by line, and where to find the rest."""
    if tally.resent_certain:
        out.echo(
            f"{tally.resent_certain} push(es) had failed for certain in an earlier run (nothing "
            "of them went out: e.g. a 401, a 400 or a refused connection), so they were sent again"
        )
    if not tally.failed:
        return
    listed = tally.failures
    if listed:
        out.echo("failures:")
        for failure in listed:
            out.echo(f"  {failure}")
    more = tally.failed - tally.not_sent - len(listed)
    if more > 0:
        where = [f"the journal {journal}" if journal else "", failed_out or ""]
        said = " and ".join(w for w in where if w)
        hint = f" (see {said})" if said else " (--failed-out FILE writes them all)"
        out.echo(f"  ... and {more} more{hint}")
    if tally.not_sent:
        out.echo(f"{tally.not_sent} push(es) were not sent: the batch stopped at the first 401")
    if tally.ambiguous:
        out.echo(
            f"{tally.ambiguous} ambiguous push(es) may have gone out: they are not resent "
            "unless you rerun with the same --journal and --retry-ambiguous"
        )
