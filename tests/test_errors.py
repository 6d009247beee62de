"""`foundation.errors`: the one way every command reports a user error (one line naming what
to fix, exit 2; the traceback only with FOUNDATION_DEBUG=1). The entry-point families are run as
subprocesses in tests/recipes, tests/benchmarks and tests/data_pipelines."""

import pytest

from foundation.errors import entry_point, run_reporting
from foundation.errors import DataError


@entry_point
def _main(argv=None) -> int:
    raise DataError("shards/manifest.json: not a manifest\n(rebuild it)")


def test_a_user_error_is_one_line_named_by_the_module_and_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("FOUNDATION_DEBUG", raising=False)
    assert _main() == 2
    err = capsys.readouterr().err
    assert err == f"{__name__}: error: shards/manifest.json: not a manifest (rebuild it)\n"


@pytest.mark.parametrize("value, shown", [("1", True), ("0", False), ("", False)])
def test_foundation_debug_shows_the_traceback(monkeypatch, value, shown):
    monkeypatch.setenv("FOUNDATION_DEBUG", value)
    if shown:
        with pytest.raises(DataError):
            _main()
    else:
        assert _main() == 2


def test_other_exceptions_keep_their_traceback_and_returns_pass_through():
    with pytest.raises(ZeroDivisionError):
        run_reporting("prog", lambda: 1 / 0)
    assert run_reporting("prog", lambda: None) == 0 and run_reporting("prog", lambda: 3) == 3
