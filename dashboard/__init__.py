"""The Streamlit dashboard: pages for leads, on-call engineers and finance.

Every figure comes from a `stepscope.analytics` function returning a polars DataFrame;
this package lays them out and never queries the store itself. `launch.run_dashboard`
starts it (`stepscope dashboard`, `stepscope demo`).
"""
