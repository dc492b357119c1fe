"""Prompts become phrases of word ids the same way in training and at serve time."""

from daguerre.models.builtin import text


def test_unknown_words_encode_without_error() -> None:
    ids = text.encode_text("a zebra, a unicorn and a dragon with wings")
    assert (ids[:4, 1] == 1).any()  # <unk>


def test_phrases_split_objects_and_background() -> None:
    assert text.phrases(
        "a red circle on the left, a blue square at the top and a gray background"
    ) == [
        ["a", "red", "circle", "on", "the", "left"],
        ["a", "blue", "square", "at", "the", "top"],
        ["a", "gray", "background"],
    ]
