"""Exports of the API lists as CSV and XLSX, and the monthly operational report."""
