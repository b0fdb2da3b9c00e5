"""What an audit event stores of what the caller sent."""

from audit.services import _storable


def test_nul_characters_are_replaced_at_any_depth_and_ids_kept_as_they_are():
    sent = {
        "counted_viewing_ids": list(range(1, 200)),
        "mixed": [1, "a\x00b", [2, "\x00"], {"k\x00": ("v\x00", 3)}, True, None, 2.5],
        "k\x00": "v",
    }
    assert _storable(sent) == {
        "counted_viewing_ids": list(range(1, 200)),
        "mixed": [1, "a\ufffdb", [2, "\ufffd"], {"k\ufffd": ["v\ufffd", 3]}, True, None, 2.5],
        "k\ufffd": "v",
    }
