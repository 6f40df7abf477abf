"""Server-rendered pages of the portal (for browsers; the API is the same data as JSON)."""

from __future__ import annotations

from html import escape

from aitestbed.portal import schemas

PAGE = """<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse}} th,td{{padding:.35rem .7rem;border-bottom:1px solid #ddd;
text-align:left}} td.num{{text-align:right}} .bar{{background:#eee;width:8rem;height:.6rem;
display:inline-block}} .bar span{{display:block;height:100%;background:#3572b0}}
.muted{{color:#666}}
</style></head><body>{body}</body></html>"""


def _bar(used: float, total: float) -> str:
    share = min(used / total, 1.0) if total > 0 else 1.0
    return f"<span class='bar' title='{share:.0%}'><span style='width:{share:.0%}'></span></span>"


def usage_page(
    site_name: str, me: schemas.Me, usage: list[schemas.ProjectUsageOut], prefix: str
) -> str:
    role = " (operator: all projects)" if me.operator else ""
    rows = "".join(
        "<tr>"
        f"<td>{escape(u.title)}<br><span class='muted'>{escape(u.slug)}</span></td>"
        f"<td class='num'>{u.gpu_hours_used:.1f} / {u.gpu_hours_budget:g} "
        f"{_bar(u.gpu_hours_used, u.gpu_hours_budget)}</td>"
        f"<td class='num'>{u.gpus_in_use:g} / {u.max_concurrent_gpus}</td>"
        f"<td class='num'>{u.running_sessions}</td>"
        f"<td>{u.valid_from.isoformat()} to {u.valid_until.isoformat()}</td>"
        "</tr>"
        for u in usage
    )
    empty = (
        f"<p>You belong to no project yet: <a href='{escape(prefix)}access'>request access</a>.</p>"
    )
    table = (
        "<table><thead><tr><th>Project</th><th>GPU-hours used / budget</th>"
        "<th>GPUs in use / cap</th><th>Running sessions</th><th>Allocation period</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
        if usage
        else empty
    )
    export = (
        f"<p><a href='{escape(prefix)}api/usage.csv'>Export usage as CSV</a> &middot; "
        f"<a href='{escape(prefix)}api/dataset-audit.csv'>Export the dataset audit log as "
        "CSV</a></p>"
        if me.operator
        else ""
    )
    body = (
        f"<h1>{escape(site_name)}: usage</h1>"
        f"<p>Signed in as <b>{escape(me.name)}</b>{role}.</p>{table}{export}"
        f"<p class='muted'><a href='{escape(prefix)}api/docs'>API documentation</a></p>"
    )
    return PAGE.format(title=escape(f"{site_name}: usage"), body=body)
