"""Store queries never draw DuckDB's progress bar, which DuckDB prints on stdout.

DuckDB draws it for any query slower than `progress_bar_time` (two seconds), on stdout,
even when stdout is a file: it would corrupt the JSON or CSV a command prints there.
"""

from __future__ import annotations

import duckdb

from stepscope.store import Store, scratch_connection

QUERY = "SELECT count(*) FROM range(20000000) t(x) WHERE x % 7 = 1"
SETTING = "SELECT current_setting('enable_progress_bar')"


def test_store_connections_have_the_progress_bar_off(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    with store.connect() as reader:
        assert reader.execute(SETTING).fetchall() == [(False,)]
    scratch = scratch_connection()
    assert scratch.execute(SETTING).fetchall() == [(False,)]
    scratch.close()


def test_a_plain_connection_would_draw_it_on_stdout(capfd):
    """What the setting prevents: a bar on stdout once a query runs long enough."""
    con = duckdb.connect()
    con.execute("SET progress_bar_time = 0")  # also switches the bar on
    assert con.execute(QUERY).fetchall() == [(2857143,)]
    assert "%" in capfd.readouterr().out
