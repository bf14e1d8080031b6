"""Statement files: CSV (UTF-8 with a BOM, so Excel reads Chinese) and PDF (reportlab, with
its built-in CID font STSong-Light, which draws Chinese without shipping a font file).

Amounts are formatted for the customer's locale (``core.money.format_money``); the CSV also
carries them in minor units for machines.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Final
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas as pdf_canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from bankwallet.core import i18n
from bankwallet.core.i18n import N_
from bankwallet.history.service import KIND_LABELS, Statement, StatementSection

PDF_FONT: Final = "STSong-Light"
CSV_BOM: Final = "\ufeff"
# A spreadsheet runs a cell that starts with one of these as a formula: counterparties and
# notes come from other people, so such text gets a leading apostrophe.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

_CSV_HEADER: Final = (N_("Date"), N_("Currency"), N_("Type"), N_("Counterparty"), N_("Note"),
                      N_("Reference"), N_("Transaction ID"), N_("Amount"), N_("Balance"),
                      N_("Amount (minor units)"), N_("Balance (minor units)"))
_OPENING: Final = N_("Opening balance")
_CLOSING: Final = N_("Closing balance")
_STATEMENT: Final = N_("Account statement")
_PERIOD: Final = N_("Period")
_CUSTOMER: Final = N_("Customer")
_TIME_ZONE: Final = N_("Times are in {zone}.")
_TO_DATE: Final = N_("The month is not over: this statement runs to today.")
_POSTED_ONLY: Final = N_("Balances are posted balances: amounts still on hold are not in them.")
_PAGE: Final = N_("Page {page} of {pages}")
_GENERATED: Final = N_("Generated {when}")
_MONEY_IN: Final = N_("Money in")
_MONEY_OUT: Final = N_("Money out")
_DETAILS: Final = N_("Details")
_NO_MOVEMENTS: Final = N_("No movements in this period.")
_NO_BALANCES: Final = N_("You held no balance in this period.")


def filename(statement: Statement, extension: str) -> str:
    return f"statement-{statement.month}.{extension}"


def _when(value: dt.datetime, zone: str) -> str:
    """Date and time in the bank's zone, one unambiguous pattern for every language."""
    return i18n.format_datetime(value, "en", format="yyyy-MM-dd HH:mm", tzinfo=zone)


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


# -- CSV -------------------------------------------------------------------------------------


def statement_csv(statement: Statement, *, locale: str) -> bytes:
    _ = lambda message: i18n.gettext(message, locale)  # noqa: E731
    money = lambda minor, currency: i18n.format_money(minor, currency, locale)  # noqa: E731
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_(h) for h in _CSV_HEADER])
    for s in statement.sections:
        writer.writerow([statement.first_day.isoformat(), s.currency, _(_OPENING), "", "", "",
                         "", "", money(s.opening_minor, s.currency), "", s.opening_minor])
        for line in s.lines:
            p = line.posting
            writer.writerow([_when(p.created_at, statement.timezone), s.currency,
                             _(KIND_LABELS[p.kind]), _cell(p.counterparty), _cell(p.note),
                             _cell(p.ref), str(p.transfer_id), money(p.amount_minor, s.currency),
                             money(line.balance_minor, s.currency), p.amount_minor,
                             line.balance_minor])
        writer.writerow([statement.last_day.isoformat(), s.currency, _(_CLOSING), "", "", "",
                         "", "", money(s.closing_minor, s.currency), "", s.closing_minor])
    return (CSV_BOM + out.getvalue()).encode("utf-8")


# -- PDF -------------------------------------------------------------------------------------


# STSong-Light has no glyph for these; the katakana middle dot stands in for the dots.
_PDF_GLYPHS: Final = str.maketrans({"\u00b7": "\u30fb", "\u2022": "\u30fb", "\u2027": "\u30fb",
                                    "\u2212": "-"})


def _plain(text: str) -> str:
    return text.translate(_PDF_GLYPHS)


def _markup(text: str) -> str:
    """Text for a reportlab Paragraph, which reads markup: escaped, with glyphs it can draw."""
    return escape(_plain(text))


def _register_font() -> None:
    if PDF_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))


def statement_pdf(statement: Statement, *, locale: str, bank_name: str, customer: str) -> bytes:
    """A4 pages: the bank's name, the customer's masked login and the period on each, page
    numbers "Page n of N", then per currency a summary and every movement with its balance."""
    _register_font()
    _ = lambda message: i18n.gettext(message, locale)  # noqa: E731
    money = lambda minor, currency: i18n.format_money(minor, currency, locale)  # noqa: E731
    period = f"{statement.first_day.isoformat()} – {statement.last_day.isoformat()}"
    generated = _(_GENERATED).format(when=_when(statement.generated_at, statement.timezone))
    margin = 16 * mm

    def style(size: float, **kw) -> ParagraphStyle:
        return ParagraphStyle(f"s{size}", fontName=PDF_FONT, fontSize=size,
                              leading=size * 1.35, wordWrap="CJK", **kw)

    body, small, title, heading = style(9), style(7, textColor=colors.grey), style(16), style(12)

    class NumberedCanvas(pdf_canvas.Canvas):
        """Draws the running header and "Page n of N" once the page count is known."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for state in self._pages:
                self.__dict__.update(state)
                self._furniture(len(self._pages))
                super().showPage()
            super().save()

        def _furniture(self, pages: int) -> None:
            width, height = A4
            self.setFont(PDF_FONT, 9)
            self.drawString(margin, height - 10 * mm, _plain(bank_name))
            self.drawRightString(width - margin, height - 10 * mm,
                                 _plain(f"{_(_STATEMENT)} · {period}"))
            self.setFont(PDF_FONT, 8)
            self.drawString(margin, 10 * mm, _plain(f"{customer} · {generated}"))
            self.drawRightString(width - margin, 10 * mm, _(_PAGE).format(
                page=self._pageNumber, pages=pages))

    story: list = [Paragraph(_markup(_(_STATEMENT)), title), Spacer(1, 3 * mm),
                   Paragraph(_markup(f"{bank_name}"), body),
                   Paragraph(_markup(f"{_(_CUSTOMER)}: {customer}"), body),
                   Paragraph(_markup(f"{_(_PERIOD)}: {period}"), body),
                   Paragraph(_markup(_(_TIME_ZONE).format(zone=statement.timezone)), small),
                   Paragraph(_markup(_(_POSTED_ONLY)), small)]
    if not statement.complete:
        story.append(Paragraph(_markup(_(_TO_DATE)), small))
    if not statement.sections:
        story += [Spacer(1, 6 * mm), Paragraph(_markup(_(_NO_BALANCES)), body)]
    frame_width = A4[0] - 2 * margin
    for section in statement.sections:
        story += [Spacer(1, 8 * mm)]
        story += _pdf_section(section, statement, _, money, body=body, heading=heading,
                              width=frame_width)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=margin, rightMargin=margin,
                            topMargin=18 * mm, bottomMargin=18 * mm,
                            title=f"{_(_STATEMENT)} {statement.month}", author=bank_name,
                            subject=period, creator=bank_name)
    doc.build(story, canvasmaker=NumberedCanvas)
    return out.getvalue()


def _pdf_section(section: StatementSection, statement: Statement, _, money, *,
                 body: ParagraphStyle, heading: ParagraphStyle, width: float) -> list:
    c = section.currency
    summary = Table([[_(_OPENING), _(_MONEY_IN), _(_MONEY_OUT), _(_CLOSING)],
                     [money(section.opening_minor, c), money(section.money_in_minor, c),
                      money(-section.money_out_minor, c), money(section.closing_minor, c)]],
                    colWidths=[width / 4] * 4)
    summary.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), PDF_FONT, 9),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.grey),
        ("BOX", (0, 0), (-1, -1), 0.5, colors.lightgrey)]))
    parts = [KeepTogether([Paragraph(_markup(c), heading), summary])]
    if not section.lines:
        return [*parts, Paragraph(_markup(_(_NO_MOVEMENTS)), body)]
    rows = [[_("Date"), _(_DETAILS), _("Amount"), _("Balance")],
            ["", Paragraph(_markup(_(_OPENING)), body), "", money(section.opening_minor, c)]]
    for line in section.lines:
        p = line.posting
        details = " · ".join(x for x in (_(KIND_LABELS[p.kind]), p.counterparty) if x)
        text = _markup(details)
        if p.note:
            text += "<br/>" + _markup(p.note)
        text += f'<br/><font size="6" color="grey">{_markup(str(p.transfer_id))}</font>'
        rows.append([_when(p.created_at, statement.timezone), Paragraph(text, body),
                     money(p.amount_minor, c), money(line.balance_minor, c)])
    rows.append(["", Paragraph(_markup(_(_CLOSING)), body), "", money(section.closing_minor, c)])
    table = Table(rows, colWidths=[28 * mm, width - 28 * mm - 60 * mm, 30 * mm, 30 * mm],
                  repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), PDF_FONT, 8),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.grey),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
        ("LINEBELOW", (0, 1), (-1, -2), 0.25, colors.lightgrey),
        ("ALIGN", (2, 0), (3, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return [*parts, table]
