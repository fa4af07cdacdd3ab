"""A statement's PDF is rendered from its frozen JSON, the same bytes every time."""

from __future__ import annotations

import zlib

from domain.billing.statement import Line, content_hash, to_json
from gateways.billing.pdf import statement_pdf


def line(n: int, amount: int) -> Line:
    return Line(
        charge_id=f"chg-{n:026d}",
        tenant_id="tnt-" + "1" * 26,
        period="2027-01",
        charge_class="Correction" if n == 2 else "",
        resource_id="i-" + "2" * 26,
        region_id="rgn-" + "3" * 26,
        project_id=None,
        dimension="vcpu",
        quantity="2",
        start=f"2027-01-0{n}T09:00:00+00:00",
        end=f"2027-01-0{n}T10:00:00+00:00",
        unit_price="12",
        discount_percent="0",
        price_version="pbk-x@v1",
        amount_minor=amount,
        list_minor=amount,
        currency="USD",
    )


def text_of(pdf: bytes) -> str:
    """The page content streams, inflated: what the PDF says."""
    out, at = [], 0
    while (start := pdf.find(b"stream\n", at)) != -1:
        end = pdf.find(b"endstream", start)
        try:
            out.append(zlib.decompress(pdf[start + 7 : end]).decode("latin-1"))
        except zlib.error:
            pass
        at = end
    return "".join(out)


def test_the_pdf_shows_the_statement_and_its_hash_and_is_reproducible() -> None:
    lines = [line(1, 24), line(2, -7)]
    document = to_json("tnt-" + "1" * 26, "2027-01", "closed", "USD", lines, content_hash(lines))
    pdf = statement_pdf(document)
    assert pdf.startswith(b"%PDF-")
    assert statement_pdf(document) == pdf
    shown = text_of(pdf)
    for text in (
        "Statement 2027-01",
        content_hash(lines),
        "0.17 USD",
        "vcpu \\(correction\\)",
        "-0.07",
    ):
        assert text in shown, text
