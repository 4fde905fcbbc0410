"""Reports: tables, plots and the HTML page."""
