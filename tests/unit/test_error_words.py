"""Every error class has our own words for the user: short sentences, not the server's text."""

from __future__ import annotations

import pytest

from app import errors
from app.errors import TelexError


def _tree(cls: type[TelexError]) -> list[type[TelexError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _tree(child))]


CLASSES = [cls for cls in _tree(TelexError) if cls.__module__ == errors.__name__]


def test_the_tree_is_walked() -> None:
    assert {errors.InvalidCredentials, errors.NetworkError, errors.ServerError} <= set(CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_says_its_own_words(cls: type[TelexError]) -> None:
    assert "words" in vars(cls), f"{cls.__name__} has no words of its own"
    words = cls.words
    assert words[0].isupper(), words
    assert words.endswith("."), words
    assert len(words) <= 120, words
    assert not {"/", "\\", "("} & set(words), "no paths or exception details"


def test_the_words_of_sign_in_failures() -> None:
    assert errors.InvalidCredentials.words == "The email or password is incorrect."
    assert errors.NetworkError.words == (
        "Can't reach Telex. Check your connection; Telex Start will keep trying."
    )
