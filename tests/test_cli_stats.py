"""``insider-webpush stats`` and ``batch --stats``: the tables, ``--json`` and ``--plot`` on the
models of the collection's sample bodies, then end to end against a FakeInsider (its own
thread, as in ``test_cli``), with few statistics requests (its quota is 30 a minute)."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from insider_webpush.cli import stats_view
from insider_webpush.cli.fatal import explain
from insider_webpush.cli.funnel_plot import write_funnel
from insider_webpush.cli.output import Output
from insider_webpush.codec.statistics import (
    campaign_metrics_from_body,
    metrics_page_from_body,
    top_metrics_from_body,
)
from insider_webpush.errors import UnprocessableEntityError
from insider_webpush.metrics import CampaignMetrics, MetricsPage, TopMetrics
from insider_webpush.testing import RecordedRequest

from .insider_collection import CAMPAIGN, OVERALL, TOP, sample
from .test_cli import (  # _no_inherited_env: test_cli's autouse fixture, active here too
    KEY,
    PARTNER,
    PUSH,
    ThreadedFake,
    _no_inherited_env,  # noqa: F401
    run,
    write_jsonl,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SINCE, UNTIL = dt.date(2023, 6, 1), dt.date(2023, 6, 8)


def campaign_sample() -> CampaignMetrics:
    return campaign_metrics_from_body(200, sample(CAMPAIGN, 200))


def top_sample() -> TopMetrics:
    return top_metrics_from_body(200, sample(TOP, 200))


def overall_sample() -> MetricsPage:
    return metrics_page_from_body(200, sample(OVERALL, 200))


def plain() -> Output:
    return Output(plain=True, secrets=[KEY])


def rows_of(text: str, title: str) -> list[list[str]]:
    """The rows of the plain table titled ``title`` (header included), split on runs of two
    or more spaces."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows.append([cell for cell in line.strip().split("  ") if cell.strip()])
    return [[cell.strip() for cell in row] for row in rows]


def assert_real_png(path: Path) -> None:
    """A PNG that decodes, of a real size, with more than one colour in it."""
    import numpy as np
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 20_000  # a chart with text, not an empty canvas
    pixels = imread(str(path))
    height, width = pixels.shape[:2]
    assert width >= 1000
    assert height >= 500
    # Each pixel as one number (RGB(A) bytes packed), so that the distinct colours count fast.
    channels = (pixels * 255).round().astype(np.uint32).reshape(-1, pixels.shape[-1])
    packed = np.zeros(len(channels), dtype=np.uint32)
    for channel in range(channels.shape[1]):
        packed = (packed << 8) | channels[:, channel]
    assert len(np.unique(packed)) > 10  # white, the bars' colours, anti-aliased text


# -- the arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [("--since", "2026-13-01"), ("--since", "yesterday"), ("--until", "2026-2-1")],
)
def test_a_bad_date_names_the_option_and_not_the_value(
    capsys: pytest.CaptureFixture[str], option: str, value: str
):
    argv = ["stats", "top", "--since", "2026-01-01", option, value]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert f"argument {option}: must be a date, YYYY-MM-DD" in err
    assert value not in err


@pytest.mark.parametrize("value", ["0", "101", "ten"])
def test_per_page_is_checked_by_the_parser(capsys: pytest.CaptureFixture[str], value: str):
    code, _, err = run(capsys, "stats", "overall", "--since", "2026-01-01", "--per-page", value)
    assert code == 2
    assert "argument --per-page: must be a whole number from 1 to 100" in err


def test_until_before_since_is_refused_before_anything_is_sent(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
):
    code, out, err = run(
        capsys, "stats", "campaign", "7", "--since", "2026-02-01", "--until", "2026-01-31"
    )
    assert code == 2
    assert "error: --until 2026-01-31 is before --since 2026-02-01; nothing was sent" in err
    assert out == ""
    assert server.requests() == []


def test_since_in_the_future_is_refused_as_after_today(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
):
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    code, _, err = run(capsys, "stats", "top", "--since", tomorrow)
    assert code == 2
    assert "(today, when --until is not given) is before --since" in err
    assert server.requests() == []


def test_a_partner_id_is_required(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("INSIDER_PARTNER_ID")
    code, _, err = run(capsys, "stats", "top", "--since", "2026-01-01")
    assert code == 2
    assert "no partner id: set INSIDER_PARTNER_ID (or pass --partner-id)" in err
    assert server.requests() == []


def test_plot_without_matplotlib_names_the_extra_and_sends_nothing(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    png = tmp_path / "funnel.png"
    code, _, err = run(capsys, "stats", "top", "--since", "2026-01-01", "--plot", str(png))
    assert code == 2
    assert "error: --plot needs matplotlib: pip install 'insider-webpush[bench]'" in err
    assert not png.exists()
    assert server.requests() == []


def test_plot_into_a_missing_folder_is_refused_before_sending(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    png = tmp_path / "no-such-folder" / "funnel.png"
    code, _, err = run(capsys, "stats", "top", "--since", "2026-01-01", "--plot", str(png))
    assert code == 2
    assert f"--plot {png}: no folder" in err
    assert server.requests() == []


def test_help_mentions_the_shared_quota(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "stats", "overall", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "30 requests a minute per key" in flat
    assert "1,000 campaigns at 10 a page are 100 requests" in flat
    assert "--limit N" in flat


def test_the_fake_server_fault_list_names_the_statistics_operations(
    capsys: pytest.CaptureFixture[str],
):
    code, out, _ = run(capsys, "fake-server", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "delete, campaign_metrics, overall_metrics or top_metrics requests" in flat


# -- tables --------------------------------------------------------------------------------


def test_the_campaign_table_shows_the_funnel_rates_and_reasons(
    capsys: pytest.CaptureFixture[str],
):
    stats_view.show_campaign(plain(), 12345, campaign_sample(), SINCE, UNTIL)
    out = capsys.readouterr().out
    assert rows_of(out, "funnel") == [
        ["step", "count", "of previous step", "of targeted"],
        ["targeted", "411,840", "-", "100.00%"],
        ["sent", "411,344", "99.88%", "99.88%"],
        ["delivered", "140,183", "34.08%", "34.04%"],
        ["clicked", "723", "0.52%", "0.18%"],
        ["converted", "0", "0.00%", "0.00%"],
    ]
    assert rows_of(out, "rates (as Insider reports them)") == [
        ["delivery rate", "34.08%"],
        ["CTR", "0.52%"],
        ["conversion rate", "0.00%"],
        ["revenue", "0 USD"],
    ]
    # The biggest reason first, Insider's labels as words, each with its share.
    assert rows_of(out, "dropped before sending (496)")[:3] == [
        ["reason", "count", "share"],
        ["unsubscriptions", "453", "91.33%"],
        ["service provider errors", "43", "8.67%"],
    ]
    assert rows_of(out, "sent but not delivered (271,161)") == [
        ["reason", "count", "share"],
        ["offline recipients", "270,807", "99.87%"],
        ["other", "354", "0.13%"],
    ]
    assert ["name", "08.06.2023-2100"] in rows_of(out, "campaign 12345")
    assert ["Mobile", "374,592", "137,106", "36.60%", "719", "0.52%", "0 USD"] in rows_of(
        out, "by device"
    )


def test_the_top_table_shows_the_overview_types_and_reasons(
    capsys: pytest.CaptureFixture[str],
):
    stats_view.show_top(plain(), top_sample(), SINCE, UNTIL)
    out = capsys.readouterr().out
    funnel = rows_of(out, "account overview, 2023-06-01 to 2023-06-08")
    assert funnel[1] == ["targeted", "9,550,384", "-", "100.00%"]
    assert funnel[-1] == ["converted", "3", "0.01%", "<0.01%"]  # 3 of 9,550,384: not 0
    types = rows_of(out, "by campaign type")
    assert types[0] == ["type", "campaigns", "delivery rate", "CTR", "conversion rate", "revenue"]
    assert types[1] == ["Bulk", "22", "32.42%", "0.76%", "0.01%", "2,479.6600112915"]
    assert len(types) == 1 + 6
    assert rows_of(out, "sent but not delivered (6,423,611)")[1] == [
        "offline recipients",
        "6,413,534",
        "99.84%",
    ]


def test_the_overall_table_has_a_row_a_campaign(capsys: pytest.CaptureFixture[str]):
    rows = [stats_view.overall_row(c) for c in overall_sample().campaigns]
    stats_view.show_overall(plain(), rows, SINCE, UNTIL, limited=True)
    out = capsys.readouterr().out
    title = "2 campaign(s), 2023-06-01 to 2023-06-08 (--limit reached: there may be more)"
    assert rows_of(out, title) == [
        ["id", "name", "sent", "delivered", "clicks", "delivery rate", "CTR"],
        ["12345", "08.06.2023-2100-BabyCare", "411,344", "140,183", "723", "34.08%", "0.52%"],
        [
            "22222",
            "08.06.2023-Bebekcom-BabyProducts",
            "411,279",
            "137,858",
            "1,158",
            "33.52%",
            "0.84%",
        ],
    ]


def test_tables_on_a_terminal_use_rich(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    out = Output(plain=False, secrets=[])
    assert out.rich
    stats_view.show_campaign(out, 12345, campaign_sample(), SINCE, UNTIL)
    text = screen.getvalue()
    assert "of previous step" in text
    assert any(line.split()[:3] == ["delivered", "140,183", "34.08%"] for line in text.splitlines())
    assert "offline recipients" in text


def test_a_reasonless_answer_says_so(capsys: pytest.CaptureFixture[str]):
    metrics = campaign_sample()
    stats_view.show_campaign(
        plain(), 1, attrs.evolve(metrics, dropped=(), undelivered=()), SINCE, UNTIL
    )
    out = capsys.readouterr().out
    assert "dropped before sending (496): Insider gave no reasons" in out


# -- JSON ----------------------------------------------------------------------------------


def test_campaign_json_uses_python_names_and_real_numbers():
    data = json.loads(json.dumps(stats_view.campaign_json(12345, campaign_sample())))
    assert data["campaign_id"] == 12345
    overview = data["overview"]
    assert overview["targeted"] == 411840
    assert type(overview["targeted"]) is int
    assert overview["delivery_rate"] == pytest.approx(0.3408)
    assert type(overview["delivery_rate"]) is float
    assert overview["revenue"] == {"amount": "0", "currency": "USD"}
    assert data["devices"][0]["revenue"] == {"amount": None, "currency": "USD"}
    assert data["dropped"][2] == {
        "label": "unsubscriptions",
        "count": 453,
        "share": pytest.approx(0.9133),
        "extra": {},
    }
    assert data["start"] == "2023-05-31T21:00:00+00:00"
    assert data["extra"] == {"comparisonData": []}  # a key the SDK does not know, kept
    assert "raw" not in data
    assert "deliveryRate" not in json.dumps(data)


def test_top_and_overall_json_keep_the_decimal_exact():
    top = json.loads(json.dumps(stats_view.to_json(top_sample())))
    assert top["performance"][0]["revenue"] == {"amount": "2479.6600112915", "currency": None}
    assert top["overview"]["revenue"] == {"amount": "2480", "currency": "TRY"}
    summary = json.loads(json.dumps(stats_view.to_json(overall_sample().campaigns[0])))
    assert summary["campaign_id"] == 12345
    assert summary["tags"] == ["Discount", "Baby", "Powder"]
    assert summary["sent_at"] == "2023-06-08T21:15:10"
    assert summary["first_button_link"] is None
    assert type(summary["ctr"]) is float


# -- the chart -----------------------------------------------------------------------------


def test_plot_of_the_sample_campaign_is_a_real_png(tmp_path: Path):
    metrics = campaign_sample()
    o = metrics.overview
    png = tmp_path / "funnel.png"
    write_funnel(
        str(png),
        # A name is text: "$...$" is not mathtext, a glyph the font lacks is no warning.
        title=f"campaign 12345 · {metrics.name} $5 off $20 🎉",
        subtitle="2023-06-01 to 2023-06-08",
        funnel=o.funnel(),
        dropped=metrics.dropped,
        undelivered=metrics.undelivered,
        dropped_total=o.dropped,
        undelivered_total=o.undelivered,
    )
    assert_real_png(png)


def test_plot_without_reasons_says_where_to_find_them(tmp_path: Path):
    page = overall_sample()
    totals = stats_view.FunnelTotals()
    for summary in page.campaigns:
        totals.add(summary)
    assert totals.funnel()[0] == ("targeted", 411840 + 411733)
    png = tmp_path / "overall.png"
    write_funnel(
        str(png),
        title="2 campaign(s), summed",
        subtitle="2023-06-01 to 2023-06-08",
        funnel=totals.funnel(),
        dropped=None,
        undelivered=None,
    )
    assert_real_png(png)


# -- errors --------------------------------------------------------------------------------


def test_a_422_lists_each_field_with_its_option_and_exits_2():
    error = UnprocessableEntityError(
        422,
        "end_date: The end date does not match the format Y-m-d.",
        errors={
            "end_date": ("The end date does not match the format Y-m-d.",),
            "campaign_id": ("The campaign id is invalid.", "It is not yours."),
        },
    )
    message, code = explain(error) or ("", 0)
    assert code == 2
    assert message.splitlines() == [
        "Insider could not process the request (HTTP 422):",
        "  end_date (--until): The end date does not match the format Y-m-d.",
        "  campaign_id: The campaign id is invalid.",
        "  campaign_id: It is not yours.",
    ]


# -- against FakeInsider -------------------------------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedFake]:
    fake = ThreadedFake(rate_limit=6000, rate_period=60.0)
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.setenv("INSIDER_BASE_URL", fake.base_url)
    try:
        yield fake
    finally:
        fake.close()


def stats_requests(server: ThreadedFake, path: str) -> list[RecordedRequest]:
    return [r for r in server.requests() if r.path == f"/v1/statistics/{path}"]


DAY = dt.date(2026, 11, 2)  # the fake's pinned "today": every campaign is created on it
# The statistics quota scaled, 30 per 0.3 s rather than a minute, in the client and the fake.
INTERVAL = ("--since", DAY.isoformat(), "--until", DAY.isoformat(), "--rate-period", "0.3")


@pytest.fixture
def dated(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedFake]:
    """A FakeInsider whose campaigns are all created on DAY."""
    fake = ThreadedFake(
        rate_limit=6000, rate_period=60.0, stats_rate_limit=30, stats_rate_period=0.3, today=DAY
    )
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.setenv("INSIDER_BASE_URL", fake.base_url)
    try:
        yield fake
    finally:
        fake.close()


def launch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, count: int, *options: str
) -> tuple[int, str, str]:
    rows = [{**PUSH, "title": f"Sale {i}"} for i in range(count)]
    return run(capsys, "batch", str(write_jsonl(tmp_path / "pushes.jsonl", rows)), *options)


def test_25_launches_then_overall_campaign_and_plot(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    ids_file = tmp_path / "ids.txt"
    code, out, err = launch(capsys, tmp_path, 25, "--stats", "--campaign-ids-out", str(ids_file))
    assert code == 0
    launched = {r.campaign_id for r in dated.launches()}
    assert len(launched) == 25
    lines = out.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("campaign ids launched"))
    assert lines[heading].startswith("campaign ids launched (25), for `insider-webpush stats")
    assert {int(line) for line in lines[heading + 1 :]} == launched
    assert {int(line) for line in ids_file.read_text().splitlines()} == launched
    assert f"25 campaign id(s) written to {ids_file}" in err

    code, out, _ = run(capsys, "stats", "overall", *INTERVAL)
    assert code == 0
    table = rows_of(out, "25 campaign(s), 2026-11-02")
    assert table[0] == ["id", "name", "sent", "delivered", "clicks", "delivery rate", "CTR"]
    assert {int(row[0]) for row in table[1:]} == launched
    assert {row[1] for row in table[1:]} == {f"Sale {i}" for i in range(25)}
    pages = stats_requests(dated, "overall-metrics")
    assert [r.body["page"] for r in pages] == ["1", "2", "3"]  # 10 a page, none past the last

    campaign_id = min(launched)
    png = tmp_path / "funnel.png"
    code, out, err = run(
        capsys, "stats", "campaign", str(campaign_id), *INTERVAL, "--plot", str(png)
    )
    assert code == 0
    assert f"funnel chart written to {png}" in err
    funnel = rows_of(out, "funnel")
    assert [row[0] for row in funnel] == [
        "step",
        "targeted",
        "sent",
        "delivered",
        "clicked",
        "converted",
    ]
    counts = [int(row[1].replace(",", "")) for row in funnel[1:]]
    assert counts == sorted(counts, reverse=True)  # a funnel narrows
    assert counts[0] > 0
    assert_real_png(png)

    code, out, _ = run(capsys, "stats", "campaign", str(campaign_id), *INTERVAL, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["campaign_id"] == campaign_id
    assert [
        data["overview"][k] for k in ("targeted", "sent", "delivered", "clicks", "conversions")
    ] == counts
    assert all(type(n) is int for n in counts)
    assert type(data["overview"]["ctr"]) is float
    assert sum(r["count"] for r in data["dropped"]) == data["overview"]["dropped"]
    assert len(stats_requests(dated, "campaign-metrics")) == 2


def test_overall_json_lines_stop_at_the_limit(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    assert launch(capsys, tmp_path, 12)[0] == 0
    code, out, _ = run(
        capsys, "stats", "overall", *INTERVAL, "--json", "--limit", "7", "--per-page", "5"
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 7
    assert all(type(row["campaign_id"]) is int and type(row["sent"]) is int for row in rows)
    assert all(type(row["delivery_rate"]) is float for row in rows)
    assert [r.body["page"] for r in stats_requests(dated, "overall-metrics")] == ["1", "2"]

    code, out, _ = run(capsys, "stats", "overall", *INTERVAL, "--limit", "3")
    assert code == 0
    assert len(rows_of(out, "3 campaign(s), 2026-11-02 (--limit reached: there may be more)")) == 4
    last = stats_requests(dated, "overall-metrics")[-1]
    assert last.body["per_page"] == "3"  # no campaign fetched only to be dropped


def test_top_against_the_fake_and_the_summed_overall_plot(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    assert launch(capsys, tmp_path, 3)[0] == 0
    code, out, _ = run(capsys, "stats", "top", *INTERVAL)
    assert code == 0
    funnel = rows_of(out, "account overview, 2026-11-02")
    assert funnel[1][0] == "targeted"
    assert rows_of(out, "by campaign type")[1][:2] == ["Bulk", "3"]
    assert "offline recipients" in out
    png = tmp_path / "overall.png"
    code, out, _ = run(capsys, "stats", "overall", *INTERVAL, "--plot", str(png), "--json")
    assert code == 0
    summed = sum(json.loads(line)["targeted"] for line in out.splitlines())
    assert summed == int(funnel[1][1].replace(",", ""))  # top adds up the same campaigns
    assert_real_png(png)


def test_insiders_422_field_errors_are_shown_with_their_options(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    code, out, err = run(capsys, "stats", "overall", *INTERVAL, "--per-page", "50")
    assert code == 2
    assert out == ""
    assert "error: Insider could not process the request (HTTP 422):" in err
    assert "  per_page (--per-page): The per page may not be greater than 20." in err
    assert launch(capsys, tmp_path, 1)[0] == 0
    (campaign,) = dated.launches()
    day_before = (DAY - dt.timedelta(days=1)).isoformat()
    code, _, err = run(
        capsys,
        "stats",
        "campaign",
        str(campaign.campaign_id),
        "--since",
        day_before,
        "--until",
        DAY.isoformat(),
        "--rate-period",
        "0.3",
    )
    assert code == 2
    assert (
        "start_date (--since): The Start Date cannot be earlier than the Campaign Create Date."
        in err
    )


def test_a_refused_key_exits_2_and_is_not_shown(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str]
):
    code, _, err = run(capsys, "stats", "top", *INTERVAL, "--api-key", "not-the-right-key-at-all")
    assert code == 2
    assert "the API key was refused" in err
    assert "check --api-key" in err
    assert "not-the-right-key-at-all" not in err


def test_campaign_ids_out_may_not_be_the_input(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = write_jsonl(tmp_path / "pushes.jsonl", [PUSH])
    code, _, err = run(capsys, "batch", str(path), "--campaign-ids-out", str(path))
    assert code == 2
    assert "--campaign-ids-out" in err
    assert "is the input file" in err
    assert dated.requests() == []
    assert json.loads(path.read_text()) == PUSH  # untouched


@pytest.mark.parametrize("kept", ["--journal", "--dedupe-store", "--failed-out"])
def test_campaign_ids_out_may_not_be_a_file_the_batch_keeps(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path, kept: str
):
    rows = [{**PUSH, "dedupe_key": "one"}, {**PUSH, "title": "Two", "dedupe_key": "two"}]
    pushes = write_jsonl(tmp_path / "pushes.jsonl", rows)
    kept_file = tmp_path / "kept"
    assert run(capsys, "batch", str(pushes), kept, str(kept_file))[0] == 0
    sent = len(dated.requests())
    before = kept_file.read_bytes()
    # The same file as the ids' output: written over, the journal (or the dedupe store) would
    # be emptied and a rerun would launch both pushes again.
    code, _, err = run(
        capsys, "batch", str(pushes), kept, str(kept_file), "--campaign-ids-out", str(kept_file)
    )
    assert code == 2
    said = {
        "--failed-out": f"--failed-out {kept_file} is the --campaign-ids-out; name another file"
    }
    assert said.get(kept, f"--campaign-ids-out {kept_file} is the {kept}; name another file") in err
    assert len(dated.requests()) == sent  # nothing more was sent
    assert kept_file.read_bytes() == before


def test_a_throttling_403_is_waited_out_with_a_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # The fake allows 2 statistics requests per 0.3 s; the client is told 30: the third page
    # gets Insider's throttling 403, which the client waits out and retries.
    fake = ThreadedFake(
        rate_limit=6000, rate_period=60.0, stats_rate_limit=2, stats_rate_period=0.3, today=DAY
    )
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.setenv("INSIDER_BASE_URL", fake.base_url)
    try:
        assert launch(capsys, tmp_path, 5)[0] == 0
        code, out, err = run(capsys, "stats", "overall", *INTERVAL, "--per-page", "2", "--json")
        assert code == 0
        assert len(out.splitlines()) == 5
        pages = stats_requests(fake, "overall-metrics")
        assert 403 in [r.status for r in pages]
        assert [r.body["page"] for r in pages if r.status == 200] == ["1", "2", "3"]
        assert "warning: POST /v1/statistics/overall-metrics: HTTP 403 (quota exceeded)" in err
    finally:
        fake.close()


def test_plot_to_a_name_that_is_not_png_is_refused_before_sending(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    svg = tmp_path / "funnel.svg"
    code, _, err = run(capsys, "stats", "top", "--since", "2026-01-01", "--plot", str(svg))
    assert code == 2
    assert f"--plot {svg}: the chart is a PNG; name a .png file" in err
    assert not svg.exists()
    assert server.requests() == []


def test_a_reader_that_goes_away_ends_the_command_quietly_and_the_chart_is_written(
    dated: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    import os
    import subprocess

    assert launch(capsys, tmp_path, 1)[0] == 0
    campaign_id = str(next(r.campaign_id for r in dated.requests() if r.campaign_id))
    png = tmp_path / "funnel.png"
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already stopped reading
    command = [sys.executable, "-m", "insider_webpush", "stats", "campaign", campaign_id]
    done = subprocess.run(
        [*command, *INTERVAL, "--plot", str(png), "--plain"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env={**os.environ},
        timeout=60,
        check=False,
    )
    os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert b"Broken pipe" not in done.stderr
    assert b"Traceback" not in done.stderr
    assert_real_png(png)


def test_text_from_the_server_cannot_forge_a_line_of_a_table(
    capsys: pytest.CaptureFixture[str],
):
    forged = "Sale\n  targeted  999,999,999"
    metrics = attrs.evolve(campaign_sample(), name=forged, alias="bulk\nconverted  5")
    stats_view.show_campaign(plain(), 12345, metrics, SINCE, UNTIL)
    out = capsys.readouterr().out
    assert "999,999,999" in out
    assert not any(line.strip().startswith("targeted  999") for line in out.splitlines())
    assert "Sale\\x0a  targeted  999,999,999" in out  # one line, the newline shown escaped


def test_the_chart_masks_the_key_and_escapes_what_the_server_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from insider_webpush.cli import funnel_plot, stats

    drawn: dict[str, Any] = {}
    monkeypatch.setattr(funnel_plot, "write_funnel", lambda path, **kw: drawn.update(kw))
    metrics = campaign_sample()
    reasons = tuple(attrs.evolve(r, label=f"{r.label} {KEY}") for r in metrics.dropped)
    metrics = attrs.evolve(metrics, name=f"echo {KEY}\x1b[2J", dropped=reasons)
    stats._plot(plain(), str(tmp_path / "f.png"), f"campaign 1 · {metrics.name}", "", metrics)
    assert KEY not in drawn["title"]
    assert "\x1b" not in drawn["title"]
    assert all(KEY not in r.label for r in drawn["dropped"])
    assert drawn["dropped"][0].label.startswith("frequencyCapped ***")
