"""A statement as PDF, rendered from its frozen JSON (the document the hash speaks for).

The PDF carries no clock of its own: its creation date is the statement period's end, so
the same statement always renders to the same bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from fpdf import FPDF

from domain.billing.money import major
from domain.billing.statement import period_bounds

_COLUMNS = (("Period", 62), ("Resource", 62), ("Dimension", 40), ("Qty", 18), ("Amount", 28))


def statement_pdf(statement_json: bytes) -> bytes:
    document: dict[str, Any] = msgspec.json.decode(statement_json)
    currency = document["currency"]
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creation_date(datetime.fromisoformat(period_bounds(document["period"])[1]))
    pdf.set_title(f"Statement {document['period']} {document['tenant_id']}")
    pdf.set_author("SCloudStack")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, f"Statement {document['period']}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    totals = document["totals"]
    for label, value in (
        ("Tenant", document["tenant_id"]),
        ("Status", document["status"]),
        ("Billed", f"{major(totals['billed_minor'], currency)} {currency}"),
        ("Of which corrections", f"{major(totals['corrections_minor'], currency)} {currency}"),
        ("Lines", str(totals["lines"])),
        ("Content hash (SHA-256)", document["content_hash"] or "- (period still open)"),
    ):
        pdf.cell(45, 5, label)
        pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 8)
    for title, width in _COLUMNS:
        pdf.cell(width, 5, title, border="B")
    pdf.ln()
    pdf.set_font("Helvetica", "", 7)
    for line in document["lines"]:
        marker = " (correction)" if line["charge_class"] else ""
        cells = (
            f"{line['start'][:16]} - {line['end'][11:16]}",
            line["resource_id"],
            line["dimension"] + marker,
            line["quantity"],
            major(line["amount_minor"], currency),
        )
        for (_, width), text in zip(_COLUMNS, cells, strict=True):
            pdf.cell(width, 4, text)
        pdf.ln()
    return bytes(pdf.output())
