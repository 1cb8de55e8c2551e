"""`inv dev`'s check of a change, in a fork of a warm interpreter: the change itself, never a stale copy."""
from __future__ import annotations

import pytest

from meshtools.local import dev


@pytest.fixture
def checker():
    made = dev.Checker()
    made.start()
    yield made
    made.close()


def test_each_check_imports_the_code_as_it_is_now(checker, tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    checker.check("import pkg; assert pkg.VALUE == 1, pkg.VALUE", tmp_path)
    (package / "__init__.py").write_text("VALUE = 2\n")
    checker.check("import pkg; assert pkg.VALUE == 2, pkg.VALUE", tmp_path)


def test_a_broken_change_is_reported_in_the_words_a_fresh_interpreter_uses(checker, tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("print('noise on stdout')\ndef broken((:\n    pass\n")
    with pytest.raises(dev.DevError) as warm:
        checker.check("import pkg", tmp_path)
    with pytest.raises(dev.DevError) as fresh:
        dev.python_check("import pkg", tmp_path)
    assert str(warm.value) == str(fresh.value)
    assert str(warm.value).startswith("SyntaxError: ") and 'File "pkg/__init__.py", line 2' in str(warm.value)
    # The checker is still there for the next save.
    (package / "__init__.py").write_text("VALUE = 3\n")
    checker.check("import pkg; assert pkg.VALUE == 3", tmp_path)


def test_the_real_app_and_proxy_pass_the_check(checker):
    checker.check(dev.CHECK_APP)
    checker.check(dev.CHECK_TRACE_PROXY)
