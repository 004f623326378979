"""Tables as Markdown, CSV or JSON text.

A table is a list of column names and a list of rows (dicts). Markdown
shows numbers with thousands separators for reading; CSV and JSON keep the
exact integers for tools.
"""

import csv
import io
import json

FORMATS = ("md", "csv", "json")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}"
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def markdown(columns, rows):
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def csv_text(columns, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            ["x".join(map(str, v)) if isinstance(v, (tuple, list)) else ("" if v is None else v)
             for v in (row.get(c) for c in columns)]
        )
    return out.getvalue()


def json_text(obj):
    return json.dumps(obj, indent=2) + "\n"
