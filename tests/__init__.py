import pytest

# Before any helper is imported (tests.support): their asserts get pytest's explanations.
pytest.register_assert_rewrite("tests.support")
