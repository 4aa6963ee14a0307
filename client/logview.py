"""`koppel log`: the run log as text (essentials or everything) and as an Excel workbook.

The manual's "Informatie" pane shows a short view by default and more with "Uitgebreide informatie tonen", and
can export everything to Excel to mail to a helpdesk; this is the same, read from the state's log table.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

COLUMNS = ("Time", "Profile", "Task", "Level", "Essential", "Order", "Message", "Detail")
_WIDTHS = (20, 14, 30, 9, 11, 14, 90, 60)
_LEVEL_MARK = {"error": "ERROR", "warning": "WARNING", "info": "", "debug": "detail"}


def _local(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return moment.astimezone(zone)


def format_entries(entries: Iterable[Any], zone: ZoneInfo, *, verbose: bool = False) -> list[str]:
    """One line per entry (oldest first); verbose adds level, task and the indented detail."""
    lines: list[str] = []
    for entry in entries:
        if not verbose and not entry.essential:
            continue
        when = _local(entry.ts, zone).strftime("%Y-%m-%d %H:%M:%S")
        mark = _LEVEL_MARK.get(entry.level, entry.level)
        head = f"{when}  {entry.profile or '-'}"
        if verbose:
            head += f"  [{entry.level}]"
            if entry.task:
                head += f" {entry.task}"
        elif mark:
            head += f"  {mark}"
        lines.append(f"{head}  {entry.message}")
        if verbose and entry.detail:
            lines.extend(f"    {line}" for line in entry.detail.rstrip().splitlines())
    return lines


def export_xlsx(entries: Sequence[Any], path: Path, zone: ZoneInfo) -> int:
    """Write every entry to an .xlsx workbook; returns the number of rows written.

    The file appears complete or not at all (written to a temporary file next to it, then renamed), so a
    helpdesk never receives half a workbook.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise ValueError(f"{path}: the export file must end in .xlsx")
    if not path.parent.exists():
        raise ValueError(f"{path}: the folder {path.parent} does not exist")
    book = Workbook()
    sheet = book.active
    sheet.title = "Log"
    sheet.append(COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    rows = 0
    for entry in entries:
        # Excel has no time zones: the local wall time is what the reader expects to see.
        when = _local(entry.ts, zone).replace(tzinfo=None, microsecond=0)
        sheet.append(
            [
                when,
                entry.profile or "",
                entry.task or "",
                entry.level,
                "yes" if entry.essential else "no",
                entry.order or "",
                entry.message,
                entry.detail or "",
            ]
        )
        rows += 1
    for index, width in enumerate(_WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    for row in sheet.iter_rows(min_row=2, min_col=1, max_col=1):
        row[0].number_format = "yyyy-mm-dd hh:mm:ss"
    for row in sheet.iter_rows(min_row=2, min_col=8, max_col=8):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{rows + 1}"

    fd, tmp = tempfile.mkstemp(prefix=".koppel-log-", suffix=".xlsx", dir=path.parent)
    os.close(fd)
    try:
        book.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows
