"""Reports: tables, plots and the HTML page of a sweep store (``build_report``)."""

from sdebench.reports.report import build_report

__all__ = ["build_report"]
